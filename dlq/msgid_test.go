package dlq

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestListByTheMsgIDOfAMalformedCommand: a command with no readable id is
// listed under the Nats-Msg-Id it was published with (less a replay's
// suffix), so `dlq ls --id X` finds what `worker status X` finds.
func TestListByTheMsgIDOfAMalformedCommand(t *testing.T) {
	p := newPipeline(t)
	for _, m := range []struct{ msgID, body string }{
		{"m-1", `not json`},
		{"m-2:replay:7", `{"type":"send","chat_id":"chat-c","content":"no id"}`},
		{"m-3", `{"id":"body-id","type":"send","chat_id":"chat-c"}`},
	} {
		if _, err := p.js.Publish(t.Context(), "chat.commands.send.chat-c", []byte(m.body), jetstream.WithMsgID(m.msgID)); err != nil {
			t.Fatal(err)
		}
	}
	p.waitDead(t, 3)
	for _, tt := range []struct{ id, want string }{
		{"m-1", "m-1"},
		{"m-2", "m-2"},
		{"m-3", ""}, // its body's id is the one it is known by
		{"body-id", "body-id"},
	} {
		sel, err := p.q.List(t.Context(), Filter{ID: tt.id})
		if err != nil {
			t.Fatal(err)
		}
		if tt.want == "" {
			if len(sel.Entries) != 0 {
				t.Errorf("--id %s: %v, want none", tt.id, ids(sel.Entries))
			}
			continue
		}
		if len(sel.Entries) != 1 || sel.Entries[0].ID != tt.want {
			t.Errorf("--id %s: %v, want one dead letter with id %s", tt.id, ids(sel.Entries), tt.want)
		}
	}
	if e, err := p.q.Get(t.Context(), "m-1"); err != nil || string(e.Letter.Body()) != "not json" {
		t.Errorf("show m-1: %+v, %v", e, err)
	}
}
