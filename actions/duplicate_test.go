package actions_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPublishDuplicate: a publish the stream reports as a duplicate is never
// silent. The same command again is ErrAlreadyPublished; a different one
// under the same id is ErrIDReused, whether the first still waits in the
// stream or the worker already took it (its idempotency record keeps the
// hash), and when nothing is left to compare with.
func TestPublishDuplicate(t *testing.T) {
	first := actions.Send{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Hello", Metadata: []byte(`{"a":1}`)}
	tests := []struct {
		name     string
		stored   string // how the first is stored: "publish", "raw" (same fields, another layout), "bad" (not a command)
		taken    string // "": still in the stream; "same" or "other": taken, with a record of this hash; "gone": taken, no record
		again    actions.Commander
		want     error
		compared bool
	}{
		{"same command, waiting", "publish", "", first, actions.ErrAlreadyPublished, true},
		{"same fields in another layout, waiting", "raw", "", first, actions.ErrAlreadyPublished, true},
		{"different content, waiting", "publish", "", actions.Send{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Bye", Metadata: []byte(`{"a":1}`)}, actions.ErrIDReused, true},
		{"different metadata, waiting", "publish", "", actions.Send{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Hello", Metadata: []byte(`{"a":2}`)}, actions.ErrIDReused, true},
		{"different type, waiting", "publish", "", actions.Note{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Hello"}, actions.ErrIDReused, true},
		{"stored one not a command", "bad", "", first, actions.ErrIDReused, true},
		{"same command, taken", "publish", "same", first, actions.ErrAlreadyPublished, true},
		{"different command, taken", "publish", "other", actions.Send{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Bye"}, actions.ErrIDReused, true},
		{"nothing left to compare", "publish", "gone", first, actions.ErrIDReused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := workertest.New(t, workertest.NoWorker())
			js, store := h.JS, h.Store
			subject := actions.Subjects{}.Command(contract.TypeSend, "email:jo@example.com")
			var seq uint64
			switch tt.stored {
			case "publish":
				if _, err := actions.Publish(t.Context(), js, first, actions.Subjects{}); err != nil {
					t.Fatal(err)
				}
				seq = 1
			case "raw", "bad":
				body := `{ "metadata": {"a": 1}, "content": "Hello", "chat_id": "email:jo@example.com", "type": "send", "id": "dup-1" }`
				if tt.stored == "bad" {
					body = `{"id":"dup-1","type":"send","chat_id":"email:jo@example.com","contnet":"Hello"}`
				}
				msg := &nats.Msg{Subject: subject, Data: []byte(body), Header: nats.Header{}}
				ack, err := js.PublishMsg(t.Context(), msg, jetstream.WithMsgID("dup-1"))
				if err != nil {
					t.Fatal(err)
				}
				seq = ack.Sequence
			}
			if tt.taken != "" {
				st, err := js.Stream(t.Context(), "CHAT_COMMANDS")
				if err != nil {
					t.Fatal(err)
				}
				if err := st.DeleteMsg(t.Context(), seq); err != nil {
					t.Fatal(err)
				}
				hash := first.Command().Hash()
				if tt.taken == "other" {
					hash = actions.Send{ID: "dup-1", ChatID: "email:jo@example.com", Content: "Hello"}.Command().Hash()
				}
				if tt.taken != "gone" {
					c, err := store.Claim(t.Context(), "dup-1", hash)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := store.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
						t.Fatal(err)
					}
				}
			}

			_, err := actions.Publish(t.Context(), js, tt.again, actions.Subjects{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Publish again: %v, want %v", err, tt.want)
			}
			other := actions.ErrIDReused
			if tt.want == actions.ErrIDReused {
				other = actions.ErrAlreadyPublished
			}
			if errors.Is(err, other) {
				t.Errorf("the error is both %v and %v", tt.want, other)
			}
			var dup *actions.DuplicateError
			if !errors.As(err, &dup) || dup.ID != "dup-1" || dup.Compared != tt.compared || dup.Sequence != seq {
				t.Errorf("error %#v, want a *DuplicateError for dup-1, sequence %d, compared %v", err, seq, tt.compared)
			}
			if !strings.Contains(err.Error(), `"dup-1"`) {
				t.Errorf("message %q does not name the id", err)
			}
			if info, _ := js.Stream(t.Context(), "CHAT_COMMANDS"); info != nil {
				if i, _ := info.Info(t.Context()); i != nil && i.State.LastSeq != seq {
					t.Errorf("the stream's last sequence is %d: the second publish was stored", i.State.LastSeq)
				}
			}
		})
	}
}
