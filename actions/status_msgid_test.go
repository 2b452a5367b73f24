package actions_test

import (
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStatusOfAMalformedCommandByItsMsgID: a command the worker cannot
// read an id from is found by the Nats-Msg-Id it was published with, once
// dead-lettered as while it waits.
func TestStatusOfAMalformedCommandByItsMsgID(t *testing.T) {
	p := newPipeline(t)
	s := actions.Subjects{}
	tests := []struct{ msgID, body string }{
		{"m-notjson", `not json`},
		{"m-noid", `{"type":"send","chat_id":"c5","content":"hi"}`},
	}
	for _, tt := range tests {
		if _, err := p.js.Publish(t.Context(), s.Command(contract.TypeSend, "c5"), []byte(tt.body), jetstream.WithMsgID(tt.msgID)); err != nil {
			t.Fatal(err)
		}
		if st, err := actions.Status(withTimeout(t, time.Minute), p.js, tt.msgID, s); err != nil || st.State != actions.StateWaiting {
			t.Errorf("%s before the worker: %+v, %v; want waiting", tt.msgID, st, err)
		}
	}
	p.start(t)
	for _, tt := range tests {
		t.Run(tt.msgID, func(t *testing.T) {
			var st actions.CommandStatus
			var err error
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				st, err = actions.Status(withTimeout(t, time.Minute), p.js, tt.msgID, s)
				if err == nil && st.State == actions.StateDeadLettered {
					break
				}
			}
			if err != nil || st.State != actions.StateDeadLettered || st.DeadLetter == nil || st.DeadLetter.Error.Class != contract.ClassInvalid {
				t.Fatalf("status: %+v, %v; want dead-lettered as invalid", st, err)
			}
			if string(st.DeadLetter.Body()) != tt.body {
				t.Errorf("dead letter body %q, want %q", st.DeadLetter.Body(), tt.body)
			}
		})
	}
}
