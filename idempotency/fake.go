package idempotency

import (
	"context"
	"errors"

	"github.com/chatworker/worker/contract"
)

// Fake is a Store for unit tests of code that uses one. Each method calls the
// matching function field; a nil field makes the method fail with an error
// naming it, so a test sees at once which call it did not expect.
type Fake struct {
	ClaimFunc     func(ctx context.Context, id, hash string) (*Claim, error)
	TentativeFunc func(id, hash string) (*Claim, error)
	CompleteFunc  func(ctx context.Context, c *Claim, out contract.Outcome) (Record, error)
	KeepFunc      func(ctx context.Context, c *Claim, out contract.Outcome) error
	ReleaseFunc   func(ctx context.Context, c *Claim) error
	ExtendFunc    func(ctx context.Context, c *Claim) error
	LookupFunc    func(ctx context.Context, id string) (Record, error)
}

var _ Store = (*Fake)(nil)

func (f *Fake) Claim(ctx context.Context, id, hash string) (*Claim, error) {
	if f.ClaimFunc == nil {
		return nil, errors.New("idempotency.Fake: unexpected call to Claim")
	}
	return f.ClaimFunc(ctx, id, hash)
}

func (f *Fake) Tentative(id, hash string) (*Claim, error) {
	if f.TentativeFunc == nil {
		return nil, errors.New("idempotency.Fake: unexpected call to Tentative")
	}
	return f.TentativeFunc(id, hash)
}

func (f *Fake) Complete(ctx context.Context, c *Claim, out contract.Outcome) (Record, error) {
	if f.CompleteFunc == nil {
		return Record{}, errors.New("idempotency.Fake: unexpected call to Complete")
	}
	return f.CompleteFunc(ctx, c, out)
}

func (f *Fake) KeepResponse(ctx context.Context, c *Claim, out contract.Outcome) error {
	if f.KeepFunc == nil {
		return errors.New("idempotency.Fake: unexpected call to KeepResponse")
	}
	return f.KeepFunc(ctx, c, out)
}

func (f *Fake) Release(ctx context.Context, c *Claim) error {
	if f.ReleaseFunc == nil {
		return errors.New("idempotency.Fake: unexpected call to Release")
	}
	return f.ReleaseFunc(ctx, c)
}

func (f *Fake) Extend(ctx context.Context, c *Claim) error {
	if f.ExtendFunc == nil {
		return errors.New("idempotency.Fake: unexpected call to Extend")
	}
	return f.ExtendFunc(ctx, c)
}

func (f *Fake) Lookup(ctx context.Context, id string) (Record, error) {
	if f.LookupFunc == nil {
		return Record{}, errors.New("idempotency.Fake: unexpected call to Lookup")
	}
	return f.LookupFunc(ctx, id)
}
