package actions_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/schematest"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestPublishAndWait: the result or the dead letter of this very publish
// comes back, also when the same command is published again; a different
// command under a used id is refused at once.
func TestPublishAndWait(t *testing.T) {
	h := workertest.New(t)
	s := actions.Subjects{}
	ok := actions.Send{ID: "w-1", ChatID: "email:jo@example.com", Content: "Hello", From: contract.FromAgent, Metadata: []byte(`{"order":"A-17"}`)}
	tests := []struct {
		name      string
		cmd       actions.Commander
		wantClass actions.Class // empty: a result
		status    string
		again     bool
		err       error
	}{
		{"succeeds", ok, "", contract.StatusSucceeded, false, nil},
		{"the same again: the first one's result", ok, "", contract.StatusSucceeded, true, nil},
		{"another chat, same id", actions.Send{ID: "w-1", ChatID: "other", Content: "Hello"}, "", "", false, actions.ErrIDReused},
		{"unknown chat: dead letter", actions.Send{ID: "w-2", ChatID: "missing:1", Content: "Hi"}, contract.ClassPermanent, "", false, nil},
		{"note", actions.Note{ID: "w-3", ChatID: "email:jo@example.com", Content: "n"}, "", contract.StatusSucceeded, false, nil},
		{"archive", actions.Archive{ID: "w-4", ChatID: "email:jo@example.com"}, "", contract.StatusSucceeded, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, got, err := actions.PublishAndWait(withTimeout(t, time.Minute), h.JS, tt.cmd, s)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.AlreadyPublished != tt.again {
				t.Errorf("AlreadyPublished = %v, want %v", got.AlreadyPublished, tt.again)
			}
			if tt.wantClass != "" {
				if got.DeadLetter == nil || got.Result != nil {
					t.Fatalf("got %+v, want a dead letter", got)
				}
				if got.DeadLetter.Error.Class != tt.wantClass {
					t.Errorf("class %q, want %q", got.DeadLetter.Error.Class, tt.wantClass)
				}
				schematest.DeadLetter(t).Valid(t, got.Data)
				return
			}
			if got.Result == nil || got.DeadLetter != nil {
				t.Fatalf("got %+v, want a result", got)
			}
			if got.Result.ID != cmd.ID || got.Result.Status != tt.status || got.Subject != s.Result(cmd.Type, cmd.ChatID) {
				t.Errorf("result %+v on %s, want %s of %s", got.Result, got.Subject, tt.status, cmd.ID)
			}
			schematest.Result(t).Valid(t, got.Data)
		})
	}

	// A command published again as a new message (past the duplicate
	// window, say) gets its own record, and the wait is for that one.
	msg := &nats.Msg{Subject: s.Command(contract.TypeSend, ok.ChatID), Data: []byte(`{"id":"w-1","type":"send","chat_id":"email:jo@example.com","content":"Hello","from":"agent","metadata":{"order":"A-17"}}`)}
	if _, err := h.JS.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	_, got, err := actions.PublishAndWait(withTimeout(t, time.Minute), h.JS, actions.Send{ID: "w-5", ChatID: ok.ChatID, Content: "later"}, s)
	if err != nil || got.Result == nil || got.Result.ID != "w-5" {
		t.Errorf("after another command's record on the same subject: %+v, %v; want w-5's result", got, err)
	}
}

// TestPublishAndWaitTimesOut: with no worker, the wait ends with the
// context and says so.
func TestPublishAndWaitTimesOut(t *testing.T) {
	h := workertest.New(t, workertest.NoWorker())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := actions.PublishAndWait(ctx, h.JS, actions.Archive{ID: "t-1", ChatID: "c"}, actions.Subjects{})
	if err == nil {
		t.Fatal("no error")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, _, err = actions.PublishAndWait(ctx, h.JS, actions.Archive{ID: "t-2", ChatID: "c"}, actions.Subjects{})
	if !errors.Is(err, actions.ErrNotSettled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNotSettled and the deadline", err)
	}
}

// TestStatus follows commands through the states Status reports.
func TestStatus(t *testing.T) {
	h := workertest.New(t, workertest.NoWorker())
	s := actions.Subjects{}
	status := func(id string) (actions.CommandStatus, error) {
		return actions.Status(withTimeout(t, time.Minute), h.JS, id, s)
	}

	if _, err := status("nobody"); !errors.Is(err, actions.ErrUnknownCommand) {
		t.Errorf("unknown id: %v, want ErrUnknownCommand", err)
	}
	// Waiting: no worker yet.
	for _, c := range []actions.Commander{
		actions.Send{ID: "s-ok", ChatID: "c1", Content: "hi"},
		actions.Send{ID: "s-404", ChatID: "missing:2", Content: "hi"},
	} {
		if _, err := actions.Publish(t.Context(), h.JS, c, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.JS.Publish(t.Context(), s.Command(contract.TypeSend, "c2"), []byte(`{"id":"s-bad","type":"send","chat_id":"c2","contnet":"x"}`)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s-ok", "s-404", "s-bad"} {
		st, err := status(id)
		if err != nil || st.State != actions.StateWaiting || st.Sequence == 0 {
			t.Errorf("%s before the worker: %+v, %v; want waiting", id, st, err)
		}
	}
	// Running: a live claim on the id.
	if _, err := h.Store.Claim(t.Context(), "s-run", "h"); err != nil {
		t.Fatal(err)
	}
	if st, err := status("s-run"); err != nil || st.State != actions.StateRunning {
		t.Errorf("claimed id: %+v, %v; want running", st, err)
	}
	// Scheduled: stored to be published in an hour, not published yet.
	due := time.Now().Add(time.Hour)
	if _, err := actions.ScheduleAt(t.Context(), h.JS, actions.Note{ID: "s-later", ChatID: "c3", Content: "later"}, due, s); err != nil {
		t.Fatal(err)
	}
	if st, err := status("s-later"); err != nil || st.State != actions.StateScheduled || st.Schedule == nil ||
		st.Schedule.At.Before(due.Add(-time.Second)) || st.Schedule.At.After(due.Add(time.Second)) || st.Sequence == 0 {
		t.Errorf("scheduled id: %+v, %v; want scheduled, due at %s", st, err, due.Format(time.RFC3339))
	}

	h.Start(h.Executor)
	tests := []struct {
		id    string
		state actions.State
		class actions.Class
	}{
		{"s-ok", actions.StateSucceeded, ""},
		{"s-404", actions.StateDeadLettered, contract.ClassPermanent},
		{"s-bad", actions.StateDeadLettered, contract.ClassInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			var st actions.CommandStatus
			deadline := time.Now().Add(time.Minute)
			for {
				var err error
				st, err = status(tt.id)
				if err != nil {
					t.Fatal(err)
				}
				if st.State == tt.state || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if st.State != tt.state {
				t.Fatalf("state %q, want %q", st.State, tt.state)
			}
			switch tt.state {
			case actions.StateSucceeded:
				if st.Result == nil || st.Result.ID != tt.id || st.Result.Status != contract.StatusSucceeded {
					t.Errorf("result %+v", st.Result)
				}
			case actions.StateDeadLettered:
				if st.DeadLetter == nil || st.DeadLetter.Error.Class != tt.class || st.DeadLetter.Error.Message == "" {
					t.Errorf("dead letter %+v, want class %s with a message", st.DeadLetter, tt.class)
				}
			}
		})
	}
}

// The worker removes a command's message from the stream just after
// storing its dead letter: in that moment, Status must say dead-lettered,
// not waiting. A replay of it waiting afterwards is waiting again.
func TestStatusOfACommandWhoseDeadLetterIsStoredButNotYetRemoved(t *testing.T) {
	h := workertest.New(t, workertest.NoWorker())
	s := actions.Subjects{}
	body := []byte(`{"id":"d-1","type":"send","chat_id":"c9","content":"hi"}`)
	ack, err := h.JS.Publish(t.Context(), s.Command(contract.TypeSend, "c9"), body, jetstream.WithMsgID("d-1"))
	if err != nil {
		t.Fatal(err)
	}
	// What the worker stores before it terminates the message.
	dl := actions.DeadLetter{Subject: s.Command(contract.TypeSend, "c9"), Stream: "CHAT_COMMANDS", Sequence: ack.Sequence,
		Command: body,
		Error:   actions.ErrorInfo{Class: contract.ClassPermanent, Message: "chat not found"}}
	data, err := json.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: s.DeadLetter(contract.TypeSend, contract.Token("c9")), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{actions.RecordID("d-1", ack.Sequence)}}}
	if _, err := h.JS.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	st, err := actions.Status(withTimeout(t, time.Minute), h.JS, "d-1", s)
	if err != nil || st.State != actions.StateDeadLettered || st.DeadLetter == nil {
		t.Fatalf("status while the dead-lettered message is still in the stream: %+v, %v; want dead-lettered", st, err)
	}
	// Replayed: a new message with the id waits.
	if _, err := h.JS.Publish(t.Context(), s.Command(contract.TypeSend, "c9"), dl.Command, jetstream.WithMsgID("d-1:replay:1")); err != nil {
		t.Fatal(err)
	}
	// The stream is a work queue: drop the dead-lettered message as the worker would.
	commands, err := h.JS.Stream(t.Context(), "CHAT_COMMANDS")
	if err != nil {
		t.Fatal(err)
	}
	if err := commands.DeleteMsg(t.Context(), ack.Sequence); err != nil {
		t.Fatal(err)
	}
	st, err = actions.Status(withTimeout(t, time.Minute), h.JS, "d-1", s)
	if err != nil || st.State != actions.StateWaiting || st.Sequence == ack.Sequence {
		t.Fatalf("status of the replay: %+v, %v; want waiting at a new sequence", st, err)
	}
}
