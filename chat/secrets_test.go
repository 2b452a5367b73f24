package chat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
)

// TestSecretsNeverInErrors drives every error path and checks that neither
// the API key nor the site token (raw or query-escaped) appears in the error,
// however it is printed.
func TestSecretsNeverInErrors(t *testing.T) {
	creds := []chat.Credentials{
		{APIKey: testKey, SiteToken: testSite},
		{APIKey: "k+/=?&%x y", SiteToken: "GSN-é/?#"},
	}
	echo := func(w http.ResponseWriter, r *http.Request, status int) {
		// A hostile or buggy server echoing the credentials back.
		q := r.URL.Query()
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"code":4001,"message":"Error 4001: key %s site %s url %s"}`, q.Get("api_key"), q.Get("site_token"), r.URL.String())
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		closed  bool // server closed: network error
		timeout time.Duration
	}{
		{name: "network error", closed: true},
		{name: "4xx echoing credentials", handler: func(w http.ResponseWriter, r *http.Request) { echo(w, r, 403) }},
		{name: "5xx echoing credentials", handler: func(w http.ResponseWriter, r *http.Request) { echo(w, r, 502) }},
		{name: "bad JSON body", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"id": nope `+r.URL.RawQuery) }},
		{name: "truncated body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, `{"id":"`)
		}},
		{name: "ctx timeout", timeout: 50 * time.Millisecond, handler: hang},
		{name: "redirect to URL with credentials", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.invalid/?"+r.URL.RawQuery, http.StatusFound)
		}},
	}
	for _, cr := range creds {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				if tt.closed {
					srv.Close()
				}
				opts := []chat.Option{chat.WithBaseURL(srv.URL), chat.WithCredentials(cr), chat.WithRateLimit(false)}
				if tt.timeout > 0 {
					opts = append(opts, chat.WithTimeout(tt.timeout))
				}
				c, err := chat.New(opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseIdleConnections()
				_, _, err = c.SendMessage(t.Context(), "a/b", chat.SendMessageRequest{Content: "x"})
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprint(errors.Unwrap(err))} {
					for _, secret := range []string{cr.APIKey, cr.SiteToken, url.QueryEscape(cr.APIKey), url.QueryEscape(cr.SiteToken)} {
						if strings.Contains(s, secret) {
							t.Errorf("error leaks %q: %s", secret, s)
						}
					}
				}
			})
		}
	}
}

// hang answers nothing until the client gives up. It reads the body first:
// only then does net/http notice that the client closed the connection.
func hang(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestTransportErrorClasses(t *testing.T) {
	t.Run("TLS certificate error is permanent", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		srv.StartTLS()
		t.Cleanup(srv.Close)
		c, _ := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}))
		_, err := c.Archive(t.Context(), "x")
		var te *chat.TransportError
		if !errors.As(err, &te) || chat.Retryable(err) || !errors.Is(err, chat.ErrPermanent) {
			t.Errorf("err = %v, want a permanent TransportError", err)
		}
	})
	t.Run("timeout is retryable", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(hang))
		t.Cleanup(srv.Close)
		c, _ := chat.New(chat.WithBaseURL(srv.URL), chat.WithTimeout(30*time.Millisecond), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}))
		_, err := c.Archive(t.Context(), "x")
		if !chat.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want retryable deadline exceeded", err)
		}
	})
	t.Run("caller cancellation is neither", func(t *testing.T) {
		c, _ := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Archive(ctx, "x")
		if chat.Retryable(err) || errors.Is(err, chat.ErrPermanent) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCredentialsRedacted(t *testing.T) {
	cr := chat.Credentials{APIKey: testKey, SiteToken: testSite}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		s := fmt.Sprintf(format, cr)
		if strings.Contains(s, testKey) || strings.Contains(s, testSite) || !strings.Contains(s, "REDACTED") {
			t.Errorf("%s: %s", format, s)
		}
	}
	if s := fmt.Sprintf("%+v", struct{ C chat.Credentials }{cr}); strings.Contains(s, testKey) {
		t.Errorf("nested: %s", s)
	}
	if got := cr.String(); got != "Credentials{APIKey:REDACTED,SiteToken:REDACTED}" {
		t.Errorf("String() = %s", got)
	}
	if b, _ := cr.MarshalJSON(); strings.Contains(string(b), testKey) {
		t.Errorf("JSON: %s", b)
	}
}

type recordingObserver struct {
	calls []string
	waits int
}

func (o *recordingObserver) APICall(op string, status int, d time.Duration, err error) {
	o.calls = append(o.calls, fmt.Sprintf("%s %d %v", op, status, err != nil))
}
func (o *recordingObserver) LimiterWait(time.Duration) { o.waits++ }

func TestObserver(t *testing.T) {
	o := &recordingObserver{}
	c, f := setup(t, chat.WithObserver(o))
	f.respond(200, `{"list":[]}`)
	c.ListChats(t.Context(), chat.ListOptions{})
	f.respond(404, `{"code":4004}`)
	c.GetChat(t.Context(), "x")
	want := "[list_chats 200 false get_chat 404 true]"
	if got := fmt.Sprint(o.calls); got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
}

// TestShortCredentialsDoNotMangleErrors: a one-letter site token used to be
// replaced wherever the letter appeared ("PoREDACTEDt ... refuREDACTEDed").
func TestShortCredentialsDoNotMangleErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // connection refused
	c, err := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}), chat.WithRateLimit(false))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.SendMessage(t.Context(), "visitors", chat.SendMessageRequest{Content: "x"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "REDACTED") || !strings.Contains(msg, "Post") || !strings.Contains(msg, "/chats/visitors/messages") {
		t.Errorf("error mangled: %s", msg)
	}
}
