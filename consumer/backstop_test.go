package consumer_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/idempotency"
)

// The backstops that settle a command no worker finishes (the max-deliveries
// advisory, claims abandoned again and again), what a redelivery of a
// command that already succeeded gets, and the lease's renewal beside the
// call.

// waitUndelivered waits until JetStream has stopped delivering the stream's
// commands (MaxDeliver reached): none pending, none awaiting an ack.
func (p *pipeline) waitUndelivered() {
	p.T.Helper()
	cons, err := p.JS.Consumer(p.T.Context(), "CHAT_COMMANDS", "chat-worker")
	if err != nil {
		p.T.Fatal(err)
	}
	workertest.Eventually(p.T, time.Minute, func() bool {
		info, err := cons.Info(p.T.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer > 0
	}, "JetStream kept delivering")
}

// waitDelivered waits until the consumer has made n deliveries.
func (p *pipeline) waitDelivered(n uint64) {
	p.T.Helper()
	cons, err := p.JS.Consumer(p.T.Context(), "CHAT_COMMANDS", "chat-worker")
	if err != nil {
		p.T.Fatal(err)
	}
	workertest.Eventually(p.T, time.Minute, func() bool {
		info, err := cons.Info(p.T.Context())
		return err == nil && info.Delivered.Consumer >= n
	}, "the command was not delivered again")
}

// recordState waits until the id's record is in state and returns it.
func (p *pipeline) recordState(id string, state idempotency.State) idempotency.Record {
	p.T.Helper()
	var rec idempotency.Record
	workertest.Eventually(p.T, time.Minute, func() bool {
		r, err := p.Store.Lookup(p.T.Context(), id)
		rec = r
		return err == nil && r.State == state
	}, "the record never reached its state")
	return rec
}

// outcomes waits until the command has a result or a dead letter.
func (p *pipeline) outcomes() (results, deadLetters uint64) {
	p.T.Helper()
	workertest.Eventually(p.T, time.Minute, func() bool {
		results, deadLetters = p.Count("CHAT_RESULTS"), p.Count("CHAT_DLQ")
		return results+deadLetters > 0
	}, "the command got neither a result nor a dead letter")
	return results, deadLetters
}

// The backstop must publish the result of a command whose record says it
// succeeded (its result publishes kept failing), never a dead letter.
func TestBackstopPublishesTheResultOfASucceededCommand(t *testing.T) {
	p := newBarePipeline(t)
	p.Config.Topology.MaxDeliver = 2
	p.Start(p.Executor)
	restore := p.refuseWrites("CHAT_RESULTS") // after start, which provisions the streams
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	p.recordState(cmd.ID, idempotency.StateSucceeded)
	p.waitUndelivered() // the backstop's turn
	restore()
	results, dead := p.outcomes()
	p.Settled()
	if dead != 0 || results != 1 {
		t.Fatalf("%d results and %d dead letters, want the one result", results, dead)
	}
	if r := p.Results(1)[0]; r.Status != contract.StatusSucceeded || r.ID != cmd.ID {
		t.Errorf("result = %s %s, want %s succeeded", r.ID, r.Status, cmd.ID)
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
}

// A dead letter that cannot be stored must not reset the command's
// budget: with a budget of 3 the API sees 3 calls, however often the dead
// letter's publish fails.
func TestUnstoredDeadLetterSpendsNoFreshBudget(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}))
	p.Start(p.Executor)
	restore := p.refuseWrites("CHAT_DLQ")
	p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	// Delivered again at least twice after the first dead letter failed.
	p.waitDelivered(3)
	restore()
	d := p.DeadLetters(1)[0]
	p.Settled()
	if got := p.Sim.Stats().Requests; got != 3 {
		t.Errorf("%d API calls, want 3 (the budget)", got)
	}
	if d.Error.Class != contract.ClassExhausted || d.Attempts != 3 {
		t.Errorf("dead letter: %+v after %d attempts, want exhausted after 3", d.Error, d.Attempts)
	}
}

// When the first result publish fails after the record is complete, the
// redelivery of that same message publishes "succeeded", not "duplicate".
func TestRedeliveryOfTheSucceededMessageGetsSucceeded(t *testing.T) {
	p := newBarePipeline(t)
	p.Start(p.Executor)
	restore := p.refuseWrites("CHAT_RESULTS")
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	p.recordState(cmd.ID, idempotency.StateSucceeded)
	// The client retries a publish that found no stream for a while: keep
	// the results refused until the command came back.
	p.waitDelivered(3)
	restore()
	r := p.Results(1)[0]
	p.Settled()
	if r.Status != contract.StatusSucceeded || r.Attempts != 1 {
		t.Errorf("result: %s after %d attempts, want succeeded after 1", r.Status, r.Attempts)
	}
	// No result was stored the first time: the record kept the response
	// for the redelivery (it keeps only a digest otherwise).
	if content := responseContent(t, r.Response); content != "x" || r.ResponseDigest != "" {
		t.Errorf("result response %s (digest %q), want the API's message with content x", r.Response, r.ResponseDigest)
	}
	// The same id published again (a new message) is a duplicate.
	p.PublishRaw("chat.commands.send.abc", cmd.ID+":again", mustJSON(t, cmd))
	if again := p.Results(2)[1]; again.Status != contract.StatusDuplicate {
		t.Errorf("the id published again: %s, want duplicate", again.Status)
	}
}

// responseContent is the content of the message the simulator answered
// with, or "" when the response is not one.
func responseContent(t *testing.T, resp json.RawMessage) string {
	t.Helper()
	var m struct {
		Content string `json:"content"`
	}
	json.Unmarshal(resp, &m)
	return m.Content
}

// A duplicate's result takes its response from the original result; once
// that is gone (purged here; or expired), it says null and carries the
// response's digest, which the record kept.
func TestDuplicateAfterTheResultIsGoneCarriesTheDigest(t *testing.T) {
	p := newBarePipeline(t)
	p.Start(p.Executor)
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	orig := p.Results(1)[0]
	p.PublishRaw("chat.commands.send.abc", cmd.ID+":again", mustJSON(t, cmd))
	if dup := p.Results(2)[1]; dup.Status != contract.StatusDuplicate || string(dup.Response) != string(orig.Response) || dup.ResponseDigest != "" {
		t.Fatalf("duplicate while the result is stored: %s %s digest %q, want the original response %s", dup.Status, dup.Response, dup.ResponseDigest, orig.Response)
	}
	results, err := p.JS.Stream(t.Context(), "CHAT_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := results.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.PublishRaw("chat.commands.send.abc", cmd.ID+":third", mustJSON(t, cmd))
	dup := p.Results(1)[0]
	p.Settled()
	want, err := contract.ResponseDigest(orig.Response)
	if err != nil {
		t.Fatal(err)
	}
	if dup.Status != contract.StatusDuplicate || string(dup.Response) != "null" || dup.ResponseDigest != want {
		t.Errorf("duplicate after the purge: %s %s digest %q, want null with digest %q", dup.Status, dup.Response, dup.ResponseDigest, want)
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The backstop must not dead-letter a command that a stalled worker is
// still executing: it waits for the lease, and publishes the result the
// stalled worker's success left.
func TestBackstopLeavesACommandAStalledWorkerHolds(t *testing.T) {
	p := newBarePipeline(t)
	p.Config.Topology.MaxDeliver = 2
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	// The stalled worker: it claimed the id with a short lease.
	stalled, err := idempotency.Open(t.Context(), p.JS, idempotency.Config{Owner: "stalled", Lease: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	claim, err := stalled.Claim(t.Context(), cmd.ID, cmd.Hash())
	if err != nil {
		t.Fatal(err)
	}
	p.Start(p.Executor)
	p.waitUndelivered()                   // both deliveries found the id busy: the backstop's turn
	claim.Attempts, claim.Sequence = 1, 1 // the command message's sequence
	if _, err := stalled.Complete(t.Context(), claim, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	results, dead := p.outcomes()
	p.Settled()
	if dead != 0 || results != 1 {
		t.Fatalf("%d results and %d dead letters, want the stalled worker's result only", results, dead)
	}
	if r := p.Results(1)[0]; r.Status != contract.StatusSucceeded {
		t.Errorf("result status %s, want succeeded", r.Status)
	}
	if n := p.Sim.Stats().Requests; n != 0 {
		t.Errorf("%d API calls by the worker, want none: the stalled worker held the command", n)
	}
}

// The poison backstop: a command whose claim was abandoned MaxAbandoned
// times (workers crashed or stalled on it) is dead-lettered, without
// another call, whatever its deliveries.
func TestCommandThatKeepsKillingWorkersIsDeadLettered(t *testing.T) {
	p := newBarePipeline(t)
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	// Three workers claim it in turn and die: each lease runs out (their
	// clocks run a lease behind) without an outcome.
	for i := range 3 {
		past := func() time.Time { return time.Now().Add(-time.Duration(3-i) * time.Minute) }
		dead, err := idempotency.Open(t.Context(), p.JS, idempotency.Config{Owner: "crashed", Lease: 30 * time.Second, Now: past})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dead.Claim(t.Context(), cmd.ID, cmd.Hash()); err != nil {
			t.Fatalf("crashed worker %d: %v", i, err)
		}
	}
	p.Start(p.Executor)
	d := p.DeadLetters(1)[0]
	p.Settled()
	if d.Error.Class != contract.ClassExhausted || !strings.Contains(d.Error.Message, "3 workers took this command") {
		t.Errorf("dead letter error = %+v", d.Error)
	}
	if n := p.Sim.Stats().Requests; n != 0 {
		t.Errorf("%d API calls, want none", n)
	}
}

// blockingStore blocks every lease extension until released, counting
// them, over a real store.
type blockingStore struct {
	idempotency.Store
	extending atomic.Int32
	release   chan struct{}
}

func (s *blockingStore) Extend(ctx context.Context, c *idempotency.Claim) error {
	s.extending.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return s.Store.Extend(ctx, c)
}

// execGate holds the first command's call until released, and records the
// calls made.
type execGate struct {
	next    consumer.Executor
	first   atomic.Bool
	hold    chan struct{}
	calls   atomic.Int32
	holding chan struct{}
}

func (e *execGate) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	e.calls.Add(1)
	if e.first.CompareAndSwap(false, true) {
		close(e.holding)
		<-e.hold
	}
	return e.next.Execute(ctx, cmd)
}

// A lease extension in progress must not hold up the next API call: the
// keep-alive held its lock across the store's round trip, and the call's
// attempt count waited on that lock.
func TestLeaseExtensionDoesNotHoldUpTheCall(t *testing.T) {
	p := newBarePipeline(t)
	store := &blockingStore{Store: p.Store, release: make(chan struct{})}
	p.Store = store
	p.Config.Concurrency = 1
	p.Config.Unordered = true
	p.Config.Topology.AckWait = 300 * time.Millisecond // a renewal every 100 ms
	exec := &execGate{next: p.Executor, hold: make(chan struct{}), holding: make(chan struct{})}
	p.Start(exec)
	p.Publish(actions.Send{ChatID: "a", Content: "x"})
	<-exec.holding
	p.Publish(actions.Send{ChatID: "b", Content: "y"})
	// b waits for the only slot, its keep-alive running: wait until its
	// renewal (or a's) is stuck in the store, then free the slot.
	workertest.Eventually(t, time.Minute, func() bool { return store.extending.Load() >= 2 }, "no lease renewal started")
	close(exec.hold)
	workertest.Eventually(t, time.Minute, func() bool { return exec.calls.Load() == 2 }, "b's call waited for a lease renewal's round trip")
	close(store.release)
	p.Results(2)
	p.Settled()
}
