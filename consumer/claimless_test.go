package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
)

// The steps of a first delivery that runs without a claim, where a worker
// may die or stall.
type step int

const (
	beforeCall   step = iota // the command decoded, no API call yet
	duringCall               // the API applied the effect; its answer is lost
	beforeRecord             // the call answered; the outcome not yet created
	beforeAck                // the outcome created; the result and the ack not yet
	// duringLongCall is duringCall in a call that outlasted a third of
	// AckWait: the keep-alive has created the claim, with its lease.
	duringLongCall
)

func (s step) String() string {
	return [...]string{"before the call", "during the call", "after the call, before the record", "after the record, before the ack",
		"during a call long enough to take the lease"}[s]
}

// longCall is how long the first worker's call at duringLongCall lasts:
// more than a third of startClaimless's AckWait, when the keep-alive takes
// the lease.
const longCall = 800 * time.Millisecond

// firstLease is the lease of the first worker's claims: a takeover waits it
// out when the first worker died holding one.
const firstLease = 3 * time.Second

// stepHook stops the first worker at one step of its first command: it
// calls at (which kills or freezes the worker), then waits for resume.
type stepHook struct {
	at     step
	on     func()
	fired  chan struct{}
	resume chan struct{}
	once   sync.Once
	woken  sync.Once
	slow   sync.Once    // the long call of duringLongCall
	claims atomic.Int32 // Claim calls of the first worker
}

// wake lets the stopped worker go on.
func (h *stepHook) wake() { h.woken.Do(func() { close(h.resume) }) }

func (h *stepHook) reached(s step) bool {
	if s != h.at {
		return false
	}
	hit := false
	h.once.Do(func() {
		hit = true
		h.on()
		close(h.fired)
		<-h.resume
	})
	return hit
}

// hookedExec is the first worker's executor.
type hookedExec struct {
	next consumer.Executor
	hook *stepHook
}

func (e *hookedExec) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	if e.hook.reached(beforeCall) {
		return contract.Outcome{}, chat.ErrInvalidRequest // dead: no call after its crash
	}
	out, err := e.next.Execute(ctx, cmd)
	if err == nil && e.hook.at == duringLongCall {
		e.hook.slow.Do(func() { time.Sleep(longCall) })
	}
	if err == nil && (e.hook.reached(duringCall) || e.hook.reached(duringLongCall)) {
		return contract.Outcome{}, chat.ErrInvalidRequest
	}
	return out, err
}

// hookedStore is the first worker's idempotency store.
type hookedStore struct {
	idempotency.Store
	hook *stepHook
}

func (s *hookedStore) Claim(ctx context.Context, id, hash string) (*idempotency.Claim, error) {
	s.hook.claims.Add(1)
	return s.Store.Claim(ctx, id, hash)
}

func (s *hookedStore) Complete(ctx context.Context, c *idempotency.Claim, out contract.Outcome) (idempotency.Record, error) {
	s.hook.reached(beforeRecord)
	rec, err := s.Store.Complete(ctx, c, out)
	s.hook.reached(beforeAck)
	return rec, err
}

// claimlessRun is a chat's commands, the first worker stopped at a step of
// the first one's claimless first delivery, and a second worker that takes
// over after AckWait.
type claimlessRun struct {
	p       *pipeline
	hook    *stepHook
	cmds    []actions.Command
	results *nats.Subscription // result publishes on the results subjects, stored or not, kept unread
	marks   *nats.Subscription // see published
	nc      *nats.Conn         // the first worker's connection
	done    chan struct{}      // closed when the first worker's Run returned
}

// published is the results published, stored or not. A result's
// PubAck does not mean the test's connection has it: the stream can
// acknowledge a message before the server has passed it to the other
// subscribers. But the server passes on one connection's messages in
// order, so a marker published after them on each publishing connection,
// once received, means they are all in the subscription's queue.
func (r *claimlessRun) published(t *testing.T) []*nats.Msg {
	t.Helper()
	for _, nc := range []*nats.Conn{r.nc, r.p.NC} { // the first worker's, the second's
		if nc.IsClosed() {
			continue // it was closed at its step, before any publish
		}
		if err := nc.Publish(r.marks.Subject, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.marks.NextMsg(30 * time.Second); err != nil {
			t.Fatalf("the marker published after the results: %v", err)
		}
	}
	var msgs []*nats.Msg
	for {
		m, err := r.results.NextMsg(0)
		if err != nil {
			return msgs // nats.ErrTimeout: none left
		}
		msgs = append(msgs, m)
	}
}

// startClaimless starts the first worker on its own NATS connection, with
// on called at step at, and publishes n commands of one chat.
func startClaimless(t *testing.T, at step, n int, on func(nc *nats.Conn, stop func())) *claimlessRun {
	t.Helper()
	p := newBarePipeline(t)
	p.Config.Claimless = true
	p.Config.Topology.AckWait = time.Second
	p.Config.ShutdownGrace = time.Minute // a frozen command is not handed back meanwhile
	r := &claimlessRun{p: p}
	sub, err := p.NC.SubscribeSync(p.Config.Topology.WithDefaults().Subjects.Result("*", "*")[:len("chat.results.")] + ">")
	if err != nil {
		t.Fatal(err)
	}
	r.results = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if r.marks, err = p.NC.SubscribeSync("test.claimless.marker"); err != nil {
		t.Fatal(err)
	}
	if err := p.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	nc, js := natstest.Connect(t, p.Server)
	r.nc = nc
	// A first worker that dies holding a lease (duringLongCall, or any call
	// slowed past a third of AckWait on a loaded machine) keeps the
	// command from the takeover until the lease runs out: a short one.
	store, err := idempotency.Open(t.Context(), js, idempotency.Config{Owner: "first", Lease: firstLease})
	if err != nil {
		t.Fatal(err)
	}
	var stop func()
	r.hook = &stepHook{at: at, fired: make(chan struct{}), resume: make(chan struct{})}
	r.hook.on = func() { on(nc, stop) }
	cons, err := consumer.Provision(t.Context(), js, p.Config.Topology)
	if err != nil {
		t.Fatal(err)
	}
	w, err := consumer.New(js, cons, &hookedExec{next: p.Executor, hook: r.hook}, &hookedStore{Store: store, hook: r.hook}, p.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.done = done
	go func() { _ = w.Run(ctx); close(done) }() // its connection may be closed under it
	stop = cancel
	t.Cleanup(func() {
		r.hook.wake()
		cancel()
		<-done
	})
	for i := range n {
		r.cmds = append(r.cmds, p.Publish(actions.Send{ChatID: "c1", Content: fmt.Sprint(i)}))
	}
	select {
	case <-r.hook.fired:
	case <-time.After(30 * time.Second):
		t.Fatalf("the first worker never reached the step %s", at)
	}
	return r
}

// takeOver starts the second worker and waits until every command has one
// stored result and the stream is empty.
func (r *claimlessRun) takeOver(t *testing.T) []actions.Result {
	t.Helper()
	r.p.Start(r.p.Executor)
	results := r.p.Results(len(r.cmds))
	r.p.Settled()
	return results
}

// check asserts exactly once: one stored result per command, succeeded,
// one effect per command in publish order, no dead letter; and that the
// first worker never claimed (it ran the claimless path).
func (r *claimlessRun) check(t *testing.T, results []actions.Result, wantCalls int64) {
	t.Helper()
	byID := map[string]actions.Result{}
	for _, res := range results {
		if _, dup := byID[res.ID]; dup {
			t.Errorf("two results for %s", res.ID)
		}
		byID[res.ID] = res
	}
	for _, c := range r.cmds {
		if res, ok := byID[c.ID]; !ok || res.Status != contract.StatusSucceeded {
			t.Errorf("command %s: result %+v, want succeeded", c.ID, res)
		}
	}
	effects := r.p.Sim.Effects()
	if len(effects) != len(r.cmds) {
		t.Errorf("%d effects for %d commands", len(effects), len(r.cmds))
	}
	for i, e := range effects {
		if e.Content != fmt.Sprint(i) {
			t.Errorf("effect %d is %q: out of the chat's order", i, e.Content)
		}
	}
	for key, n := range r.p.EffectsByKey() {
		if n != 1 {
			t.Errorf("command %s took effect %d times", key, n)
		}
	}
	if n := r.p.Count("CHAT_DLQ"); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	if wantCalls > 0 {
		if got := r.p.Sim.Stats().Requests; got != wantCalls {
			t.Errorf("%d API calls, want %d", got, wantCalls)
		}
	}
	if n := r.hook.claims.Load(); n != 0 {
		t.Errorf("the first worker claimed %d times: its first delivery was not claimless", n)
	}
}

// A worker that dies at any step of a claimless first delivery, with two
// more commands of the chat queued behind it in its lane: the redelivery
// claims and finishes, every command takes effect once, in order, with one
// result. Dying is closing the worker's NATS connection, so nothing it does
// afterwards reaches NATS (and its keep-alive stops, as a dead process's
// does).
func TestClaimlessFirstDeliveryWorkerDies(t *testing.T) {
	for _, tc := range []struct {
		at step
		// wantCalls: API calls in all (0: not checked). Where the first
		// worker's call may have applied the effect, the redelivery calls
		// again and the API's Idempotency-Key answers it (the window
		// docs/idempotency.md describes); elsewhere it must not.
		wantCalls int64
	}{
		{beforeCall, 3},
		{duringCall, 4},
		{beforeRecord, 4},
		{beforeAck, 3},
		// The takeover waits out the lease, then calls again, as at
		// duringCall.
		{duringLongCall, 4},
	} {
		t.Run(tc.at.String(), func(t *testing.T) {
			r := startClaimless(t, tc.at, 3, func(nc *nats.Conn, _ func()) { nc.Close() })
			if tc.at == duringLongCall {
				rec, err := r.p.Store.Lookup(t.Context(), r.cmds[0].ID)
				if err != nil || rec.State != idempotency.StatePending || rec.Owner != "first" {
					t.Fatalf("the first worker died without holding the lease: record %+v, %v", rec, err)
				}
			}
			results := r.takeOver(t)
			r.check(t, results, tc.wantCalls)
			// Each command's result is published as one message. A
			// command behind the first can come again while the takeover
			// waits (out the lease, say) and have it published again: the
			// same message, which the stream drops.
			msgIDs := map[string]string{} // command id: its result's Nats-Msg-Id
			for _, m := range r.published(t) {
				var res actions.Result
				if err := json.Unmarshal(m.Data, &res); err != nil {
					t.Fatal(err)
				}
				id := m.Header.Get(nats.MsgIdHdr)
				if prev, ok := msgIDs[res.ID]; ok && prev != id {
					t.Errorf("command %s: two different results published, %s and %s", res.ID, prev, id)
				}
				msgIDs[res.ID] = id
			}
			if len(msgIDs) != len(r.cmds) {
				t.Errorf("results published for %d commands, want %d", len(msgIDs), len(r.cmds))
			}
		})
	}
}

// A worker that stalls past AckWait after its claimless call (SIGSTOP, a
// long pause) while another takes the redelivery, then wakes up: the
// redelivery reports the outcome; the stalled worker must then publish no
// result of its own and leave the message alone. Stalling is pulling no
// more commands (its Run is cancelled: it drains, within a long grace)
// and holding the step until the other worker is done.
func TestClaimlessFirstDeliveryWorkerStallsPastAckWait(t *testing.T) {
	for _, tc := range []struct {
		at          step
		wantCalls   int64
		wantResults int // publishes of results (a copy of the same message's result is dropped by the stream)
	}{
		{beforeRecord, 2, 1},
		// Its record was created: the redelivery repeats its result, and
		// the woken worker stores the same one again (same Nats-Msg-Id).
		{beforeAck, 1, 2},
	} {
		t.Run(tc.at.String(), func(t *testing.T) {
			r := startClaimless(t, tc.at, 1, func(_ *nats.Conn, stop func()) { go stop() })
			results := r.takeOver(t)
			r.hook.wake()
			// The woken worker finishes its command and stops (it was
			// told to before it froze), then the publishes it made are in.
			select {
			case <-r.done:
			case <-time.After(30 * time.Second):
				t.Fatal("the woken worker did not stop")
			}
			r.check(t, results, tc.wantCalls)
			if got := len(r.published(t)); got != tc.wantResults {
				t.Errorf("%d results published, want %d", got, tc.wantResults)
			}
			if n := r.p.Count("CHAT_RESULTS"); n != 1 {
				t.Errorf("%d results stored, want 1", n)
			}
		})
	}
}
