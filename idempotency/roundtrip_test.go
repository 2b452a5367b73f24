package idempotency

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/contract"
)

// countingKV counts the bucket calls that each cost a round trip.
type countingKV struct {
	jetstream.KeyValue
	calls map[string]int
}

func (c *countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	c.calls["Get"]++
	return c.KeyValue.Get(ctx, key)
}

func (c *countingKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	c.calls["Create"]++
	return c.KeyValue.Create(ctx, key, value, opts...)
}

func (c *countingKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	c.calls["Update"]++
	return c.KeyValue.Update(ctx, key, value, rev)
}

// The hot path must stay at one round trip per step; only repeats read.
func TestRoundTrips(t *testing.T) {
	e := setup(t)
	s := e.open(t, "a/1")
	ckv := &countingKV{KeyValue: s.kv, calls: map[string]int{}}
	s.kv = ckv
	ctx := t.Context()
	var c *Claim

	steps := []struct {
		name string
		do   func() error
		want int
	}{
		{"fresh claim", func() (err error) { c, err = s.Claim(ctx, "rt", h1); return err }, 1},
		{"extend", func() error { return s.Extend(ctx, c) }, 1},
		{"release", func() error { return s.Release(ctx, c) }, 1},
		{"claim released", func() (err error) { c, err = s.Claim(ctx, "rt", h1); return err }, 3},
		{"busy", func() error {
			_, err := s.Claim(ctx, "rt", h1)
			return expect(err, ErrBusy)
		}, 2},
		{"complete", func() error { _, err := s.Complete(ctx, c, contract.Outcome{APIStatus: 200}); return err }, 1},
		{"duplicate", func() error {
			_, err := s.Claim(ctx, "rt", h1)
			return expect(err, ErrDuplicate)
		}, 2},
		{"lookup", func() error { _, err := s.Lookup(ctx, "rt"); return err }, 1},
	}
	for _, st := range steps {
		clear(ckv.calls)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		n := 0
		for _, v := range ckv.calls {
			n += v
		}
		if n != st.want {
			t.Errorf("%s: %d round trips %v, want %d", st.name, n, ckv.calls, st.want)
		}
	}
}

// A lease that ran out without anyone taking it over still lets its owner
// finish: nobody else can have run the command.
func TestCompleteAfterLeaseExpiredUntouched(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)
	e.clock.Add(10 * DefaultLease)
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}

func expect(err, target error) error {
	if errors.Is(err, target) {
		return nil
	}
	return errors.Join(errors.New("unexpected result"), err)
}
