package chat_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
)

// TestUnavailable: what says the API (or the way to it) is down matches
// ErrUnavailable and stays retryable; what a call or the configuration
// is to blame for does not.
func TestUnavailable(t *testing.T) {
	answer := func(status int, contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    bool
	}{
		{"503 API", answer(503, "application/json", `{"code":5000,"message":"Error 5000"}`), true},
		{"502 HTML from a gateway", answer(502, "text/html", `<html>Bad Gateway</html>`), true},
		{"504 empty", answer(504, "", ""), true},
		{"500 API", answer(500, "application/json", `{"code":0,"message":"Error 0"}`), true},
		{"429 rate limit", answer(429, "application/json", `{"code":4002,"message":"Error 4002"}`), false},
		{"408 request timeout", answer(408, "", ""), false},
		{"404 unknown chat", answer(404, "application/json", `{"code":4004,"message":"Error 4004"}`), false},
		{"401 refused key", answer(401, "application/json", `{"code":4001,"message":"Error 4001"}`), false},
		{"404 HTML: a wrong base URL", answer(404, "text/html", `<html>nope</html>`), false},
		{"a timeout", nil, true}, // the answer never comes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.handler
			if h == nil {
				release := make(chan struct{})
				h = func(w http.ResponseWriter, r *http.Request) { <-release }
				defer close(release) // before the server's Close, which waits for it
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			c, err := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}),
				chat.WithRateLimit(false), chat.WithTimeout(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			_, _, err = c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "x"})
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, chat.ErrUnavailable); got != tt.want {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v: %v", got, tt.want, err)
			}
			if tt.want && !chat.Retryable(err) {
				t.Errorf("an unavailable API is not retryable: %v", err)
			}
		})
	}

	t.Run("a refused connection", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		c, err := chat.New(chat.WithBaseURL("http://"+addr), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}),
			chat.WithRateLimit(false))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "x"})
		if !errors.Is(err, chat.ErrUnavailable) || !chat.Retryable(err) {
			t.Errorf("refused connection: unavailable %v, retryable %v: %v", errors.Is(err, chat.ErrUnavailable), chat.Retryable(err), err)
		}
	})
}
