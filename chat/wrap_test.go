package chat_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/chatworker/worker/chat"
)

type headerAdder struct{ base http.RoundTripper }

func (h headerAdder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Wrapped", "yes")
	return h.base.RoundTrip(r)
}

// TestWithTransportWrapper: the wrapper sees every request, and the
// client still refuses to follow a redirect (the key is in the query).
func TestWithTransportWrapper(t *testing.T) {
	var redirected atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/elsewhere":
			redirected.Store(true)
		default:
			if r.Header.Get("X-Wrapped") != "yes" {
				t.Errorf("request not wrapped: %v", r.Header)
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "GSN-1"}),
		chat.WithTransportWrapper(func(base http.RoundTripper) http.RoundTripper { return headerAdder{base} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	_, _ = c.Archive(t.Context(), "abc")
	if redirected.Load() {
		t.Error("the wrapped client followed a redirect")
	}
	if _, err := chat.New(chat.WithTransportWrapper(nil)); err == nil {
		t.Error("a nil wrapper was accepted")
	}
}
