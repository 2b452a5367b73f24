package actions_test

import (
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/schematest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPublishAndWaitAcrossAServerRestart: the NATS server restarts (same
// port, same file store) after the command is published and before the
// worker runs it; the wait must still return its result. The waiting app
// reconnects more slowly than the worker, so the result is stored while
// the app is still disconnected, as it happens when a worker sits next to
// the server and the app is further away.
func TestPublishAndWaitAcrossAServerRestart(t *testing.T) {
	// newPipeline's schema check would run after the restarted server is
	// shut down: check here instead.
	p := &pipeline{srv: natstest.RunServer(t)}
	_, p.js = natstest.Connect(t, p.srv)
	var err error
	if p.cons, err = consumer.Provision(t.Context(), p.js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	if p.store, err = idempotency.Open(t.Context(), p.js, idempotency.Config{}); err != nil {
		t.Fatal(err)
	}
	s := actions.Subjects{}
	nc, err := nats.Connect(p.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(2*time.Second), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	app, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		settled actions.Settled
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		_, st, err := actions.PublishAndWait(withTimeout(t, time.Minute), app, actions.Send{ID: "r-1", ChatID: "c1", Content: "hi"}, s)
		done <- outcome{st, err}
	}()
	commands, err := p.js.Stream(t.Context(), "CHAT_COMMANDS")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		info, err := commands.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command was not published")
		}
	}
	p.srv = natstest.RestartServer(t, p.srv)
	p.start(t)
	got := <-done
	if got.err != nil {
		t.Fatalf("PublishAndWait across a restart: %v", got.err)
	}
	if got.settled.Result == nil || got.settled.Result.ID != "r-1" || got.settled.Result.Status != contract.StatusSucceeded {
		t.Fatalf("got %+v, want r-1's result", got.settled)
	}
	schematest.Stream(t, p.js, "CHAT_RESULTS", schematest.Result(t))
}
