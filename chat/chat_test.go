package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
)

const (
	testKey  = "sk_live_SECRETKEY123"
	testSite = "GSN-SECRET-S"
)

// request is what the fake API saw.
type request struct {
	Method string
	URI    string // RequestURI as on the wire
	Path   string // escaped path, no query
	Query  url.Values
	Header http.Header
	Body   string
}

// fakeAPI records requests and answers with a configurable response.
type fakeAPI struct {
	mu     sync.Mutex
	reqs   []request
	status int
	header http.Header
	body   string
}

func (f *fakeAPI) respond(status int, body string, kv ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body, f.header = status, body, http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		f.header.Set(kv[i], kv[i+1])
	}
}

func (f *fakeAPI) last(t *testing.T) request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("no request received")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	uri := r.RequestURI
	path, _, _ := strings.Cut(uri, "?")
	f.mu.Lock()
	f.reqs = append(f.reqs, request{Method: r.Method, URI: uri, Path: path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(b)})
	status, body, hdr := f.status, f.body, f.header
	f.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// setup starts a fake API and a client pointed at it under /chat/v1.
func setup(t *testing.T, opts ...chat.Option) (*chat.Client, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts = append([]chat.Option{
		chat.WithBaseURL(srv.URL + "/chat/v1"),
		chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}),
		chat.WithRateLimit(false),
	}, opts...)
	c, err := chat.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, f
}

func testJSONBody(t *testing.T, got, want string) {
	t.Helper()
	if want == "" {
		if got != "" {
			t.Errorf("body = %q, want none", got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body = %s, want %s", gb, wb)
	}
}

func TestMethods(t *testing.T) {
	from := time.UnixMilli(1700000000000)
	to := time.UnixMilli(1700000999000)
	msg := `{"id":"m1","type":"message","from":"client","content":"hi","timestamp":1700000000000,"person_id":"p","private":false,"entities":[],"data":{}}`
	tests := []struct {
		name      string
		call      func(context.Context, *chat.Client) (any, error)
		method    string
		path      string // escaped, as on the wire
		query     url.Values
		body      string
		response  string
		check     func(t *testing.T, v any)
		wantNoKey bool // no Idempotency-Key header
	}{
		{
			name: "send default from",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				m, _, err := c.SendMessage(ctx, "abc123", chat.SendMessageRequest{Content: "hi"})
				return m, err
			},
			method: "POST", path: "/chat/v1/chats/abc123/messages", body: `{"content":"hi","from":"client"}`, response: msg,
			check: func(t *testing.T, v any) {
				if m := v.(*chat.Message); m.ID != "m1" || m.Content != "hi" || m.Timestamp != 1700000000000 {
					t.Errorf("message = %+v", m)
				}
			},
		},
		{
			name: "send email id from agent",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				_, _, err := c.SendMessage(ctx, "email:jo@example.com", chat.SendMessageRequest{Content: "yo", From: "agent"})
				return nil, err
			},
			method: "POST", path: "/chat/v1/chats/email:jo@example.com/messages", body: `{"content":"yo","from":"agent"}`, response: msg,
		},
		{
			name: "send slash id",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				_, _, err := c.SendMessage(ctx, "a/b", chat.SendMessageRequest{Content: "x", From: "bot"})
				return nil, err
			},
			method: "POST", path: "/chat/v1/chats/a%2Fb/messages", body: `{"content":"x","from":"bot"}`, response: msg,
		},
		{
			name: "note query and fragment chars",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				m, _, err := c.LeaveNote(ctx, "a?b#c", chat.NoteRequest{Content: "n"})
				return m, err
			},
			method: "POST", path: "/chat/v1/chats/a%3Fb%23c/notes", body: `{"content":"n"}`, response: msg,
		},
		{
			name: "archive escaped percent",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				_, err := c.Archive(ctx, "%2F")
				return nil, err
			},
			method: "POST", path: "/chat/v1/chats/%252F/archive", response: `{}`,
		},
		{
			name: "get chat control chars and unicode",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				ch, _, err := c.GetChat(ctx, "a b\n\u00e9")
				return ch, err
			},
			method: "GET", path: "/chat/v1/chats/a%20b%0A%C3%A9", wantNoKey: true,
			response: `{"id":"x","archived":1700000000001,"latest":{"timestamp":5,"message":` + msg + `},"language":"en","_links":{"self":"/x"}}`,
			check: func(t *testing.T, v any) {
				ch := v.(*chat.Chat)
				if ch.Archived == nil || *ch.Archived != 1700000000001 || ch.Latest.Message.ID != "m1" || string(ch.Links) != `{"self":"/x"}` {
					t.Errorf("chat = %+v", ch)
				}
			},
		},
		{
			name: "list chats with offset and range",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				l, _, err := c.ListChats(ctx, chat.ListOptions{Offset: 20, Count: 5, From: from, To: to})
				return l, err
			},
			method: "GET", path: "/chat/v1/chats", wantNoKey: true,
			query:    url.Values{"limit": {"20,5"}, "from": {"1700000000000"}, "to": {"1700000999000"}},
			response: `{"list":[{"id":"a","archived":null},{"id":"b","archived":null}]}`,
			check: func(t *testing.T, v any) {
				if l := v.(*chat.ChatList); len(l.List) != 2 || l.List[1].ID != "b" || l.List[0].Archived != nil {
					t.Errorf("list = %+v", l)
				}
			},
		},
		{
			name: "list chats count only",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				_, _, err := c.ListChats(ctx, chat.ListOptions{Count: 7})
				return nil, err
			},
			method: "GET", path: "/chat/v1/chats", wantNoKey: true, query: url.Values{"limit": {"7"}}, response: `{"list":[]}`,
		},
		{
			name: "feed keeps events raw",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				l, _, err := c.Feed(ctx, "a/b", chat.ListOptions{})
				return l, err
			},
			method: "GET", path: "/chat/v1/chats/a%2Fb/feed", wantNoKey: true,
			response: `{"list":[{"id":"e1","type":"event","event":"archive","timestamp":9,"extra":1},` + msg + `]}`,
			check: func(t *testing.T, v any) {
				l := v.(*chat.FeedList)
				if len(l.List) != 2 || l.List[0].Type != "event" || l.List[0].Event != "archive" || !strings.Contains(string(l.List[0].Raw), `"extra":1`) || l.List[1].Content != "hi" {
					t.Errorf("feed = %+v", l)
				}
			},
		},
		{
			name: "messages limit offset",
			call: func(ctx context.Context, c *chat.Client) (any, error) {
				l, _, err := c.Messages(ctx, "abc", chat.MessagesOptions{Limit: 3, Offset: 6})
				return l, err
			},
			method: "GET", path: "/chat/v1/chats/abc/messages", wantNoKey: true,
			query: url.Values{"limit": {"3"}, "offset": {"6"}}, response: `{"list":[` + msg + `]}`,
			check: func(t *testing.T, v any) {
				if l := v.(*chat.MessageList); len(l.List) != 1 || l.List[0].ID != "m1" {
					t.Errorf("messages = %+v", l)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := setup(t)
			f.respond(200, tt.response, "Content-Type", "application/json")
			v, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			r := f.last(t)
			if r.Method != tt.method {
				t.Errorf("method = %s, want %s", r.Method, tt.method)
			}
			if r.Path != tt.path {
				t.Errorf("path on the wire = %s, want %s", r.Path, tt.path)
			}
			want := url.Values{"api_key": {testKey}, "site_token": {testSite}}
			for k, v := range tt.query {
				want[k] = v
			}
			if r.Query.Encode() != want.Encode() {
				t.Errorf("query = %s, want %s", r.Query.Encode(), want.Encode())
			}
			testJSONBody(t, r.Body, tt.body)
			if got := r.Header.Get("User-Agent"); got != chat.DefaultUserAgent {
				t.Errorf("User-Agent = %q", got)
			}
			if tt.method == "POST" && r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
			}
			if got := r.Header.Get("Idempotency-Key"); (got == "") != tt.wantNoKey {
				t.Errorf("Idempotency-Key = %q", got)
			}
			if tt.check != nil {
				tt.check(t, v)
			}
		})
	}
}

func TestHeadersAndCallOptions(t *testing.T) {
	c, f := setup(t, chat.WithUserAgent("demo/1.2"))
	f.respond(200, `{}`)
	ctx := t.Context()
	if _, err := c.Archive(ctx, "x", chat.WithIdempotencyKey("cmd-1"),
		chat.WithCallCredentials(chat.Credentials{APIKey: "other", SiteToken: "GSN-2"})); err != nil {
		t.Fatal(err)
	}
	r := f.last(t)
	if r.Header.Get("Idempotency-Key") != "cmd-1" || r.Header.Get("User-Agent") != "demo/1.2" {
		t.Errorf("headers = %v", r.Header)
	}
	if r.Query.Get("api_key") != "other" || r.Query.Get("site_token") != "GSN-2" {
		t.Errorf("call credentials not used: %v", r.Query)
	}
	// Random keys differ between calls.
	c.Archive(ctx, "x")
	k1 := f.last(t).Header.Get("Idempotency-Key")
	c.Archive(ctx, "x")
	k2 := f.last(t).Header.Get("Idempotency-Key")
	if k1 == "" || k1 == k2 {
		t.Errorf("random idempotency keys %q, %q", k1, k2)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		body          string
		headers       []string
		wantRetryable bool
		wantCode      int
		wantMsg       string
		wantAfter     time.Duration
		wantRL        chat.RateLimit
	}{
		{name: "400", status: 400, body: `{"code":4000,"message":"Error 4000: parameter missing"}`, wantCode: 4000, wantMsg: "Error 4000: parameter missing"},
		{name: "403", status: 403, body: `{"code":4001,"message":"Error 4001: not authorised"}`, wantCode: 4001, wantMsg: "Error 4001: not authorised"},
		{name: "404 non-JSON body", status: 404, body: `<html>nope</html>`},
		{name: "408", status: 408, wantRetryable: true},
		{name: "425", status: 425, wantRetryable: true},
		{
			name: "429", status: 429, body: `{"code":4002,"message":"Error 4002: rate limit exceeded"}`, wantRetryable: true, wantCode: 4002,
			wantMsg: "Error 4002: rate limit exceeded", wantAfter: 7 * time.Second,
			headers: []string{"Retry-After", "7", "X-RateLimit-Cost", "1", "X-RateLimit-Limit", "750", "X-RateLimit-Remaining", "0", "X-RateLimit-Full", "60"},
			wantRL:  chat.RateLimit{Cost: 1, Limit: 750, Remaining: 0, Full: time.Minute, Known: true},
		},
		{name: "500", status: 500, body: `{"code":5000,"message":"Error 5000: internal"}`, wantRetryable: true, wantCode: 5000, wantMsg: "Error 5000: internal"},
		{name: "503 retry-after", status: 503, headers: []string{"Retry-After", "2"}, wantRetryable: true, wantAfter: 2 * time.Second},
		{name: "302 not followed", status: 302, headers: []string{"Location", "https://elsewhere.invalid/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, f := setup(t)
			f.respond(tt.status, tt.body, tt.headers...)
			_, resp, err := c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "x"})
			var ae *chat.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.StatusCode != tt.status || ae.Code != tt.wantCode || ae.Message != tt.wantMsg || ae.Op != "send" || ae.Method != "POST" || ae.Path != "/chat/v1/chats/abc/messages" {
				t.Errorf("APIError = %+v", ae)
			}
			if chat.Retryable(err) != tt.wantRetryable || errors.Is(err, chat.ErrPermanent) == tt.wantRetryable {
				t.Errorf("retryable = %v, permanent = %v, want retryable %v", chat.Retryable(err), errors.Is(err, chat.ErrPermanent), tt.wantRetryable)
			}
			if d, ok := chat.RetryAfter(err); d != tt.wantAfter || ok != (tt.wantAfter > 0) {
				t.Errorf("RetryAfter = %v, %v, want %v", d, ok, tt.wantAfter)
			}
			if ae.RateLimit != tt.wantRL {
				t.Errorf("RateLimit = %+v, want %+v", ae.RateLimit, tt.wantRL)
			}
			if resp == nil || resp.StatusCode != tt.status || string(resp.Body) != tt.body {
				t.Errorf("response = %+v", resp)
			}
		})
	}
}

func TestInvalidChatIDRefusedWithoutRequest(t *testing.T) {
	c, f := setup(t)
	ctx := t.Context()
	for _, id := range []string{"", ".", "..", strings.Repeat("x", chat.MaxChatIDLen+1)} {
		calls := map[string]func() error{
			"send":     func() error { _, _, err := c.SendMessage(ctx, id, chat.SendMessageRequest{Content: "x"}); return err },
			"note":     func() error { _, _, err := c.LeaveNote(ctx, id, chat.NoteRequest{Content: "x"}); return err },
			"archive":  func() error { _, err := c.Archive(ctx, id); return err },
			"get":      func() error { _, _, err := c.GetChat(ctx, id); return err },
			"feed":     func() error { _, _, err := c.Feed(ctx, id, chat.ListOptions{}); return err },
			"messages": func() error { _, _, err := c.Messages(ctx, id, chat.MessagesOptions{}); return err },
		}
		for name, call := range calls {
			err := call()
			if !errors.Is(err, chat.ErrInvalidChatID) || !errors.Is(err, chat.ErrPermanent) || chat.Retryable(err) {
				t.Errorf("%s(%.10q): err = %v", name, id, err)
			}
		}
	}
	if _, _, err := c.SendMessage(ctx, "ok", chat.SendMessageRequest{Content: "x", From: "visitor"}); !errors.Is(err, chat.ErrInvalidRequest) || !errors.Is(err, chat.ErrPermanent) {
		t.Errorf("bad from: err = %v", err)
	}
	if _, _, err := c.SendMessage(ctx, strings.Repeat("x", chat.MaxChatIDLen), chat.SendMessageRequest{Content: "x"}); err != nil {
		t.Errorf("256-byte ID refused: %v", err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d requests made, want 1", n)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  chat.Option
	}{
		{"relative base URL", chat.WithBaseURL("/chat/v1")},
		{"ftp base URL", chat.WithBaseURL("ftp://example.com")},
		{"base URL with query", chat.WithBaseURL("https://example.com/?api_key=x")},
		{"nil http client", chat.WithHTTPClient(nil)},
		{"zero timeout", chat.WithTimeout(0)},
		{"empty user agent", chat.WithUserAgent(" ")},
		{"header injection", chat.WithUserAgent("a\r\nX-Evil: 1")},
		{"no api key", chat.WithCredentials(chat.Credentials{SiteToken: "s"})},
		{"zero conns", chat.WithMaxConnsPerHost(0)},
		{"nil observer", chat.WithObserver(nil)},
	}
	for _, tt := range tests {
		if _, err := chat.New(tt.opt); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	if _, err := chat.New(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
