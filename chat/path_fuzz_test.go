package chat_test

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
)

// wire is a RoundTripper that serialises each request as it would go on the
// wire and hands the bytes to an in-process handler, so the simulator sees
// exactly the request line a real server would, without a socket per input.
type wire struct{ h http.Handler }

func (w wire) RoundTrip(req *http.Request) (*http.Response, error) {
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, err
	}
	sreq, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// FuzzChatIDPath sends a message to arbitrary chat IDs and checks, from the
// simulator's side, that the ID stayed one path segment: the request reached
// the send route, for exactly that chat, on the path /chat/v1/chats/<escaped
// ID>/messages. Slashes, "..", "%2F", "?", "#" and control bytes must not
// change the path or add a query; IDs the client refuses make no request.
func FuzzChatIDPath(f *testing.F) {
	for _, id := range []string{"abc123", "email:jo@example.com", "a/b", "../archive", "..", ".", "%2F", "a%2F..%2F..", "x?api_key=evil", "x#frag",
		"a\x00b", "\r\nHost: evil", " ", "é", "\xff", "chats/x/notes", strings.Repeat("a", 256), strings.Repeat("a", 257), ""} {
		f.Add(id)
	}
	sim := chatsim.New(chatsim.Config{NotFoundPrefix: strings.Repeat("\x00", chat.MaxChatIDLen+1)})
	c, err := chat.New(chat.WithBaseURL("http://chat.test/chat/v1"), chat.WithHTTPClient(&http.Client{Transport: wire{sim}}),
		chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}), chat.WithRateLimit(false))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		sim.Reset()
		_, _, err := c.SendMessage(t.Context(), id, chat.SendMessageRequest{Content: "hi"})
		effects := sim.Effects()
		if errors.Is(err, chat.ErrInvalidChatID) {
			if len(effects) != 0 {
				t.Fatalf("refused ID %q still reached the API: %+v", id, effects)
			}
			return
		}
		if err != nil {
			t.Fatalf("send to %q: %v", id, err)
		}
		if len(effects) != 1 {
			t.Fatalf("send to %q: %d effects, want 1", id, len(effects))
		}
		e := effects[0]
		want := "/chat/v1/chats/" + url.PathEscape(id) + "/messages"
		if e.Op != "send" || e.ChatID != id || e.Path != want {
			t.Fatalf("send to %q: the simulator saw op %q, chat %q, path %q; want send, the ID, %q", id, e.Op, e.ChatID, e.Path, want)
		}
		if n := strings.Count(e.Path, "/"); n != 5 {
			t.Fatalf("path %q has %d slashes, want 5", e.Path, n)
		}
	})
}
