package idempotency

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
)

// A tentative claim stores nothing until its first write, which creates the
// record, or fails with ErrLeaseLost when the id got one meanwhile: that
// is what lets a first delivery run without a claim, and still never report
// an outcome over another delivery's.
func TestTentativeClaim(t *testing.T) {
	ok := contract.Outcome{APIStatus: 200}
	for _, tc := range []struct {
		name string
		// before stores what another delivery did with the id meanwhile.
		before func(t *testing.T, e *env, other *KV)
		// write is the tentative claim's first write.
		write    func(ctx context.Context, s *KV, c *Claim) error
		wantErr  error
		wantRec  func(t *testing.T, rec Record, err error)
		attempts int
	}{
		{
			name:  "complete creates the outcome",
			write: func(ctx context.Context, s *KV, c *Claim) error { _, err := s.Complete(ctx, c, ok); return err },
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StateSucceeded || rec.Attempts != 1 || rec.Sequence != 9 {
					t.Errorf("record %+v, %v: want succeeded after 1 attempt, sequence 9", rec, err)
				}
			},
			attempts: 1,
		},
		{
			name:    "complete over a live claim",
			before:  func(t *testing.T, e *env, other *KV) { mustClaim(t, other, "cmd-1", h1) },
			write:   func(ctx context.Context, s *KV, c *Claim) error { _, err := s.Complete(ctx, c, ok); return err },
			wantErr: ErrLeaseLost,
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StatePending || rec.Owner != "b/1" {
					t.Errorf("record %+v, %v: want b's claim untouched", rec, err)
				}
			},
			attempts: 1,
		},
		{
			name: "complete over an outcome",
			before: func(t *testing.T, e *env, other *KV) {
				c := mustClaim(t, other, "cmd-1", h1)
				c.Sequence = 3
				if _, err := other.Complete(t.Context(), c, ok); err != nil {
					t.Fatal(err)
				}
			},
			write:   func(ctx context.Context, s *KV, c *Claim) error { _, err := s.Complete(ctx, c, ok); return err },
			wantErr: ErrLeaseLost,
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StateSucceeded || rec.Sequence != 3 {
					t.Errorf("record %+v, %v: want b's outcome untouched", rec, err)
				}
			},
			attempts: 1,
		},
		{
			name: "complete over a released failure",
			before: func(t *testing.T, e *env, other *KV) {
				c := mustClaim(t, other, "cmd-1", h1)
				attempt(c, e.clock.Now())
				if err := other.Release(t.Context(), c); err != nil {
					t.Fatal(err)
				}
			},
			write:    func(ctx context.Context, s *KV, c *Claim) error { _, err := s.Complete(ctx, c, ok); return err },
			wantErr:  ErrLeaseLost,
			wantRec:  func(t *testing.T, rec Record, err error) {},
			attempts: 1,
		},
		{
			name: "complete after the key was deleted by hand",
			before: func(t *testing.T, e *env, other *KV) {
				mustClaim(t, other, "cmd-1", h1)
				if err := other.kv.Delete(t.Context(), keyFor("cmd-1")); err != nil {
					t.Fatal(err)
				}
			},
			write: func(ctx context.Context, s *KV, c *Claim) error { _, err := s.Complete(ctx, c, ok); return err },
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StateSucceeded {
					t.Errorf("record %+v, %v: want succeeded", rec, err)
				}
			},
			attempts: 1,
		},
		{
			name:  "extend takes the lease",
			write: func(ctx context.Context, s *KV, c *Claim) error { return s.Extend(ctx, c) },
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StatePending || rec.Owner != "a/1" || rec.LeaseExpires.IsZero() || rec.Attempts != 1 {
					t.Errorf("record %+v, %v: want a's live claim with 1 attempt", rec, err)
				}
			},
			attempts: 1,
		},
		{
			name:  "release keeps the attempts",
			write: func(ctx context.Context, s *KV, c *Claim) error { return s.Release(ctx, c) },
			wantRec: func(t *testing.T, rec Record, err error) {
				if err != nil || rec.State != StatePending || rec.Owner != "" || !rec.LeaseExpires.IsZero() || rec.Attempts != 2 {
					t.Errorf("record %+v, %v: want a released claim with 2 attempts", rec, err)
				}
			},
			attempts: 2,
		},
		{
			name:  "release without an attempt writes nothing",
			write: func(ctx context.Context, s *KV, c *Claim) error { return s.Release(ctx, c) },
			wantRec: func(t *testing.T, rec Record, err error) {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("record %+v, %v: want none", rec, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			a, b := e.open(t, "a/1"), e.open(t, "b/1")
			c, err := a.Tentative("cmd-1", h1)
			if err != nil {
				t.Fatal(err)
			}
			if c.Stored() {
				t.Fatal("a tentative claim says it is stored")
			}
			if _, err := a.Lookup(t.Context(), "cmd-1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Tentative stored something: %v", err)
			}
			for i := range tc.attempts {
				attempt(c, e.clock.Now().Add(time.Duration(i)*time.Second))
			}
			c.Sequence = 9
			if tc.before != nil {
				tc.before(t, e, b)
			}
			err = tc.write(t.Context(), a, c)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("first write: %v, want %v", err, tc.wantErr)
			}
			if err == nil && !c.Stored() && tc.attempts > 0 {
				t.Error("the claim still says it is not stored after its write")
			}
			rec, err := a.Lookup(t.Context(), "cmd-1")
			tc.wantRec(t, rec, err)
		})
	}
}

// After the lease its first write took, a tentative claim is a claim like
// any other: others find the id busy, and its outcome goes over its own
// revision.
func TestTentativeClaimAfterExtend(t *testing.T) {
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	c, err := a.Tentative("cmd-1", h1)
	if err != nil {
		t.Fatal(err)
	}
	attempt(c, e.clock.Now())
	if err := a.Extend(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if _, err := b.Claim(t.Context(), "cmd-1", h1); !errors.As(err, &busy) {
		t.Fatalf("claim beside the extended tentative one: %v, want busy", err)
	}
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
		t.Fatalf("complete after extend: %v", err)
	}
	var dup *DuplicateError
	if _, err := b.Claim(t.Context(), "cmd-1", h1); !errors.As(err, &dup) {
		t.Fatalf("claim after complete: %v, want duplicate", err)
	}
}
