package chat_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
)

// TestConfigErrors: the answers that blame the worker's configuration match
// ErrConfig, and keep their class, status, code and message; a command's own
// failures do not.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		contentType   string
		body          string
		wantConfig    bool
		wantRetryable bool
		wantCode      int
		wantNotAPI    bool
	}{
		{name: "401 code 4000", status: 401, body: `{"code":4000,"message":"Error 4000: parameter missing"}`, wantConfig: true, wantCode: 4000},
		{name: "401 without body", status: 401, wantConfig: true, wantNotAPI: true},
		{name: "403 code 4001", status: 403, body: `{"code":4001,"message":"Error 4001: not authorised"}`, wantConfig: true, wantCode: 4001},
		{name: "code 4001 on 400", status: 400, body: `{"code":4001,"message":"Error 4001: not authorised"}`, wantConfig: true, wantCode: 4001},
		{name: "code as a string", status: 400, body: `{"code":"4001","message":"x"}`, wantConfig: true, wantCode: 4001},
		{name: "404 HTML from a proxy", status: 404, contentType: "text/html; charset=utf-8", body: `<html><body>Not Found</body></html>`, wantConfig: true, wantNotAPI: true},
		{name: "404 another service's JSON", status: 404, contentType: "application/json", body: `{"error":"not found"}`, wantConfig: true, wantNotAPI: true},
		{name: "404 empty", status: 404, wantConfig: true, wantNotAPI: true},
		{name: "405 plain text", status: 405, body: `method not allowed`, wantConfig: true, wantNotAPI: true},
		{name: "301 redirect", status: 301, body: `moved`, wantConfig: true, wantNotAPI: true},
		{name: "200 HTML page", status: 200, contentType: "text/html", body: `<!doctype html><title>Welcome</title>`, wantConfig: true, wantNotAPI: true},
		{name: "200 not JSON", status: 200, contentType: "application/json", body: `OK`, wantConfig: true, wantNotAPI: true},
		{name: "200 JSON array", status: 200, contentType: "application/json", body: `[1,2]`, wantConfig: true, wantNotAPI: true},
		{name: "404 unknown chat", status: 404, body: `{"code":4004,"message":"Error 4004: chat not found"}`, wantCode: 4004},
		{name: "400 bad value", status: 400, body: `{"code":4004,"message":"Error 4004: invalid"}`, wantCode: 4004},
		{name: "message of another type keeps the code", status: 404, body: `{"code":4004,"message":{"text":"x"}}`, wantCode: 4004},
		{name: "502 HTML from a gateway", status: 502, contentType: "text/html", body: `<html>Bad Gateway</html>`, wantRetryable: true},
		{name: "429 from a gateway", status: 429, body: `slow down`, wantRetryable: true},
		{name: "500 API", status: 500, body: `{"code":5000,"message":"Error 5000"}`, wantRetryable: true, wantCode: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c, err := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}), chat.WithRateLimit(false))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			for name, call := range map[string]func() error{
				"send": func() error {
					_, _, err := c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "x"})
					return err
				},
				"list":  func() error { _, _, err := c.ListChats(t.Context(), chat.ListOptions{}); return err },
				"check": func() error { return c.Check(t.Context()) },
			} {
				err := call()
				ae := apiErr(t, err)
				// Check's request is fixed and valid: any refusal but the
				// retryable ones blames the configuration.
				wantConfig := tt.wantConfig || (name == "check" && !tt.wantRetryable)
				if got := errors.Is(err, chat.ErrConfig); got != wantConfig || ae.Config() != wantConfig {
					t.Errorf("%s: errors.Is(ErrConfig) = %v, want %v: %v", name, got, wantConfig, err)
				}
				if chat.Retryable(err) != tt.wantRetryable || errors.Is(err, chat.ErrPermanent) == tt.wantRetryable {
					t.Errorf("%s: retryable = %v, want %v", name, chat.Retryable(err), tt.wantRetryable)
				}
				if ae.StatusCode != tt.status || ae.Code != tt.wantCode || ae.NotChatAPI != tt.wantNotAPI {
					t.Errorf("%s: APIError = %+v", name, ae)
				}
				if tt.wantNotAPI && !strings.Contains(err.Error(), "not an answer of the Chat API") {
					t.Errorf("%s: message does not say what is wrong: %v", name, err)
				}
				if strings.Contains(err.Error(), "<html") {
					t.Errorf("%s: the page's text is in the message: %v", name, err)
				}
			}
		})
	}
}

// TestCheck runs Check against the simulator: the right key passes, a wrong
// key or a key not authorised for the site is a configuration error, and a
// base URL that is not the API's is one too.
func TestCheck(t *testing.T) {
	c, sim, base := newSim(t, chatsim.Config{Credentials: map[string][]string{testKey: {testSite}}})
	if err := c.Check(t.Context()); err != nil {
		t.Fatalf("right key: %v", err)
	}
	for name, cr := range map[string]chat.Credentials{
		"wrong key":  {APIKey: "sk_live_WRONGKEY99999", SiteToken: testSite},
		"wrong site": {APIKey: testKey, SiteToken: "GSN-OTHER-S"},
	} {
		err := c.Check(t.Context(), chat.WithCallCredentials(cr))
		if !errors.Is(err, chat.ErrConfig) || apiErr(t, err).Code != 4001 {
			t.Errorf("%s: %v, want a configuration error with code 4001", name, err)
		}
	}
	wrong, err := chat.New(chat.WithBaseURL(base+"/chat/v2"), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wrong.CloseIdleConnections)
	// The simulator answers unknown paths with its own error JSON (code
	// 4004), as the API might: a 404 for the list of chats still means the
	// base URL is wrong.
	if err := wrong.Check(t.Context()); !errors.Is(err, chat.ErrConfig) {
		t.Errorf("wrong base URL: %v, want a configuration error", err)
	}
	if got := sim.Stats().ByStatus[200]; got != 1 {
		t.Errorf("the simulator answered %d calls with 200, want 1 (a check is one call)", got)
	}
}
