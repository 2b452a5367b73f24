package chat_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
)

// TestLenientShapes: where the API's shapes are assumed, a value of another
// type never fails the call. The field is left empty, the raw JSON is kept
// and a warning names the field.
func TestLenientShapes(t *testing.T) {
	type call func(c *chat.Client) (any, *chat.Response, error)
	list := func(c *chat.Client) (any, *chat.Response, error) { return c.ListChats(t.Context(), chat.ListOptions{}) }
	feed := func(c *chat.Client) (any, *chat.Response, error) {
		return c.Feed(t.Context(), "abc", chat.ListOptions{})
	}
	get := func(c *chat.Client) (any, *chat.Response, error) { return c.GetChat(t.Context(), "abc") }
	send := func(c *chat.Client) (any, *chat.Response, error) {
		return c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "hi"})
	}
	tests := []struct {
		name  string
		call  call
		body  string
		warns []string // "op field want got"
		check func(t *testing.T, v any)
	}{
		{
			name: "archived true", call: list,
			body:  `{"list":[{"id":"a","archived":true,"language":"en"},{"id":"b","archived":1767225600000}]}`,
			warns: []string{"list_chats list[].archived number boolean"},
			check: func(t *testing.T, v any) {
				l := v.(*chat.ChatList)
				if len(l.List) != 2 || l.List[0].ID != "a" || l.List[0].Archived != nil || l.List[0].Language != "en" ||
					l.List[1].Archived == nil || *l.List[1].Archived != 1767225600000 {
					t.Errorf("list = %+v", l.List)
				}
				if got, _ := json.Marshal(l.List[0]); string(got) != `{"id":"a","archived":true,"language":"en"}` {
					t.Errorf("chat re-encodes as %s, want it as returned", got)
				}
			},
		},
		{
			name: "archived a date string, latest a string", call: get,
			body:  `{"id":"abc","archived":"2026-01-01T00:00:00Z","latest":"yesterday","agent":{"read":"x","delivered":5}}`,
			warns: []string{"get_chat archived number string", "get_chat latest object string", "get_chat agent.read number string"},
			check: func(t *testing.T, v any) {
				c := v.(*chat.Chat)
				if c.ID != "abc" || c.Archived != nil || c.Latest != nil || c.Agent == nil || c.Agent.Read != nil || c.Agent.Delivered == nil || *c.Agent.Delivered != 5 {
					t.Errorf("chat = %+v", c)
				}
				if !strings.Contains(string(c.Raw), `"archived":"2026-01-01T00:00:00Z"`) {
					t.Errorf("raw = %s", c.Raw)
				}
			},
		},
		{
			name: "feed item of odd types", call: feed,
			body:  `{"list":[{"id":"m1","type":"message","timestamp":"1767225600000","private":"yes","entities":{},"content":"hi"},{"id":"m2","type":"message","timestamp":5}]}`,
			warns: []string{"feed list[].timestamp number string", "feed list[].private boolean string", "feed list[].entities array object"},
			check: func(t *testing.T, v any) {
				l := v.(*chat.FeedList)
				if len(l.List) != 2 || l.List[0].ID != "m1" || l.List[0].Content != "hi" || l.List[0].Timestamp != 0 || l.List[0].Private || l.List[1].Timestamp != 5 {
					t.Errorf("feed = %+v", l.List)
				}
				if got, _ := json.Marshal(l.List[0]); !strings.Contains(string(got), `"private":"yes"`) {
					t.Errorf("item re-encodes as %s, want it as returned", got)
				}
			},
		},
		{
			name: "list not an array", call: list,
			body:  `{"list":{"a":1}}`,
			warns: []string{"list_chats list array object"},
			check: func(t *testing.T, v any) {
				if l := v.(*chat.ChatList); len(l.List) != 0 {
					t.Errorf("list = %+v", l.List)
				}
			},
		},
		{
			// A send that the API carried out must not read as failed: the
			// caller would send it again.
			name: "sent message of odd types", call: send,
			body:  `{"id":"m9","type":"message","content":"hi","private":"false","agent":"bot-1","data":[]}`,
			warns: []string{"send private boolean string", "send agent object string"},
			check: func(t *testing.T, v any) {
				if m := v.(*chat.Message); m.ID != "m9" || m.Agent != nil || string(m.Data) != "[]" {
					t.Errorf("message = %+v", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var told []chat.Warning
			c, f := setup(t, chat.WithWarnings(func(w chat.Warning) { mu.Lock(); told = append(told, w); mu.Unlock() }))
			f.respond(200, tt.body, "Content-Type", "application/json")
			v, resp, err := tt.call(c)
			if err != nil {
				t.Fatalf("err = %v, want the call to succeed", err)
			}
			tt.check(t, v)
			var got []string
			for _, w := range resp.Warnings {
				got = append(got, fmt.Sprintf("%s %s %s %s", w.Op, w.Field, w.Want, w.Got))
			}
			slices.Sort(got)
			want := slices.Clone(tt.warns)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("warnings = %q\nwant       %q", got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(told, resp.Warnings) {
				t.Errorf("WithWarnings was told %v, the response has %v", told, resp.Warnings)
			}
			for _, w := range told {
				if s := w.String(); !strings.Contains(s, w.Field) || strings.Contains(s, "yesterday") {
					t.Errorf("warning %q", s)
				}
			}
		})
	}
}

// TestSimArchivedBool lists every chat of a simulator answering "archived":
// true: no error, each chat kept as returned, a warning per archived value.
func TestSimArchivedBool(t *testing.T) {
	var mu sync.Mutex
	fields := map[string]int{}
	c, sim, _ := newSim(t, chatsim.Config{Quirks: chatsim.Quirks{ArchivedBool: true}}, chat.WithWarnings(func(w chat.Warning) {
		mu.Lock()
		fields[w.Op+" "+w.Field]++
		mu.Unlock()
	}))
	sim.Seed(12, 2) // every fifth archived
	n, archived := 0, 0
	for ch, err := range c.AllChats(t.Context(), chat.ListOptions{Count: 5}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if ch.Archived != nil {
			t.Errorf("chat %s: Archived = %d, want nil for a boolean", ch.ID, *ch.Archived)
		}
		var raw map[string]any
		if err := json.Unmarshal(ch.Raw, &raw); err != nil {
			t.Fatal(err)
		}
		if raw["archived"] == true {
			archived++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 12 || archived != 2 || fields["list_chats list[].archived"] != 12 || len(fields) != 1 {
		t.Errorf("%d chats, %d archived, warnings %v; want 12, 2, one per chat on list[].archived", n, archived, fields)
	}
}
