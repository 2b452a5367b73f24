package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// queueAll hands the deliveries to the worker before its lane runs, as when
// a busy chat's commands arrive while one of them runs, then runs the lane
// to the end.
func (r *orderRig) queueAll(msgs ...jetstream.Msg) {
	r.t.Helper()
	var run func()
	for _, m := range msgs {
		r.w.dispatch(r.t.Context(), m, func(f func()) bool { run = f; return true }, &r.runs)
	}
	if run == nil {
		r.t.Fatal("no lane to run")
	}
	run()
}

// overlapStore is the real idempotency store, with a Complete that waits
// (up to a second) for the claim of the command after it in the chat and
// notes whether that claim came in time: while the record is stored.
type overlapStore struct {
	idempotency.Store
	lease   time.Duration
	next    map[string]string // id -> id of the chat's next command
	mu      sync.Mutex
	claimed map[string]chan struct{}
	late    []string // ids whose successor was not claimed while they were stored
}

func (s *overlapStore) Lease() time.Duration { return s.lease }

func (s *overlapStore) started(id string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.claimed[id]
	if !ok {
		ch = make(chan struct{})
		s.claimed[id] = ch
	}
	return ch
}

func (s *overlapStore) Claim(ctx context.Context, id, hash string) (*idempotency.Claim, error) {
	ch := s.started(id)
	select {
	case <-ch:
	default:
		close(ch)
	}
	return s.Store.Claim(ctx, id, hash)
}

func (s *overlapStore) Complete(ctx context.Context, c *idempotency.Claim, out contract.Outcome) (idempotency.Record, error) {
	if next, ok := s.next[c.ID]; ok {
		select {
		case <-s.started(next):
		case <-time.After(time.Second):
			s.mu.Lock()
			s.late = append(s.late, c.ID)
			s.mu.Unlock()
		}
	}
	return s.Store.Complete(ctx, c, out)
}

// publishIDs publishes commands for chat x and returns their ids.
func (r *orderRig) publishIDs(contents ...string) []string {
	r.t.Helper()
	var ids []string
	for _, c := range contents {
		cmd, err := actions.Publish(r.t.Context(), r.js, actions.Send{ChatID: "x", Content: c}, actions.Subjects{})
		if err != nil {
			r.t.Fatal(err)
		}
		ids = append(ids, cmd.ID)
	}
	return ids
}

// TestOrderNextCommandClaimedWhileTheOneBeforeIsStored: when a chat's
// commands wait in its lane, the next one's claim is made while the one
// before it is being stored, not after: a busy chat's path is the call and
// one store round trip, not two. Its call still comes after: the commands
// run in publish order, each once.
func TestOrderNextCommandClaimedWhileTheOneBeforeIsStored(t *testing.T) {
	r := newOrderRig(t)
	ids := r.publishIDs("1", "2", "3", "4")
	kv, err := idempotency.Open(t.Context(), r.js, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store := &overlapStore{Store: kv, lease: kv.Lease(), next: map[string]string{}, claimed: map[string]chan struct{}{}}
	for i := range len(ids) - 1 {
		store.next[ids[i]] = ids[i+1]
	}
	cfg := r.w.cfg
	cfg.ClaimAhead = true
	if r.w, err = New(r.js, r.cons, r.exec, store, cfg); err != nil {
		t.Fatal(err)
	}
	if err = r.w.order.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.queueAll(r.deliver(), r.deliver(), r.deliver(), r.deliver())
	r.ran("1", "2", "3", "4")
	if len(store.late) > 0 {
		t.Errorf("the next command was claimed only after these were stored: %q", store.late)
	}
	// The last acknowledgement is not waited for: the server may take a
	// moment to remove its command.
	var left uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, err := r.w.order.commands.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if left = s.State.Msgs; left == 0 || time.Now().After(deadline) {
			break
		}
	}
	if left != 0 {
		t.Errorf("commands left in the stream: %v", left)
	}
}

// By default a lane claims its next command only once the one before it is
// stored: claiming ahead cost a worker with a backlog at low API latency a
// fifth of its throughput against the first release.
func TestOrderNoClaimAheadByDefault(t *testing.T) {
	r := newOrderRig(t)
	ids := r.publishIDs("1", "2", "3")
	kv, err := idempotency.Open(t.Context(), r.js, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store := &overlapStore{Store: kv, lease: kv.Lease(), next: map[string]string{}, claimed: map[string]chan struct{}{}}
	for i := range len(ids) - 1 {
		store.next[ids[i]] = ids[i+1]
	}
	if r.w, err = New(r.js, r.cons, r.exec, store, r.w.cfg); err != nil {
		t.Fatal(err)
	}
	if err = r.w.order.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.queueAll(r.deliver(), r.deliver(), r.deliver())
	r.ran("1", "2", "3")
	if len(store.late) != 2 {
		t.Errorf("not claimed ahead: the successors of %q only; want none claimed while the one before was stored", store.late)
	}
}

// TestOrderClaimAheadDroppedWhenTheOneBeforeIsNotStored: the next command is
// made ready assuming the one before it will be settled. When its result
// cannot be stored (here: the results stream is gone), it goes back to the
// stream; the next one's claim is released, and it is checked again, finds
// its predecessor in the stream and goes back too, unexecuted.
func TestOrderClaimAheadDroppedWhenTheOneBeforeIsNotStored(t *testing.T) {
	r := newOrderRig(t)
	r.w.cfg.ClaimAhead = true
	ids := r.publishIDs("1", "2")
	if err := r.js.DeleteStream(t.Context(), r.w.cfg.Topology.ResultsStream); err != nil {
		t.Fatal(err)
	}
	r.queueAll(r.deliver(), r.deliver())
	r.ran("1")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 1 {
		t.Errorf("order waits %v, want 1: command 2 must wait for 1, handed back", waits)
	}
	rec, err := r.store.Lookup(t.Context(), ids[1])
	switch {
	case errors.Is(err, idempotency.ErrNotFound):
		t.Fatal("command 2 was not claimed ahead")
	case err != nil:
		t.Fatal(err)
	case rec.Owner != "" || rec.Attempts != 0:
		t.Errorf("command 2's claim made ahead is still held (owner %q, %d attempts): its redelivery would wait for the lease", rec.Owner, rec.Attempts)
	}
}

// TestOrderCheckAheadFindsACommandHeldElsewhere: the check made ahead
// counts only the command before as settled; a command of the chat that
// another worker holds in between still holds the next one back.
func TestOrderCheckAheadFindsACommandHeldElsewhere(t *testing.T) {
	r := newOrderRig(t, "1", "2", "3")
	r.w.cfg.ClaimAhead = true
	first, held, third := r.deliver(), r.deliver(), r.deliver()
	r.queueAll(first, third)
	r.ran("1")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 1 {
		t.Errorf("order waits %v, want 1: command 3 ran while 2 was held elsewhere", waits)
	}
	if err := held.Ack(); err != nil {
		t.Fatal(err)
	}
}
