package consumer

import (
	"context"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
)

// noStore is the idempotency store when idempotency is off: every claim
// succeeds and nothing is remembered.
type noStore struct{}

var _ idempotency.Store = noStore{}

func (noStore) Claim(_ context.Context, id, hash string) (*idempotency.Claim, error) {
	return &idempotency.Claim{Record: idempotency.Record{ID: id, Hash: hash, State: idempotency.StatePending}}, nil
}

func (s noStore) Tentative(id, hash string) (*idempotency.Claim, error) {
	return s.Claim(context.Background(), id, hash)
}

func (noStore) Complete(_ context.Context, c *idempotency.Claim, out contract.Outcome) (idempotency.Record, error) {
	r := c.Record
	r.State, r.APIStatus, r.Response, r.CompletedAt = idempotency.StateSucceeded, out.APIStatus, out.Response, time.Now()
	return r, nil
}

func (noStore) KeepResponse(context.Context, *idempotency.Claim, contract.Outcome) error { return nil }
func (noStore) Release(context.Context, *idempotency.Claim) error                        { return nil }
func (noStore) Extend(context.Context, *idempotency.Claim) error                         { return nil }
func (noStore) Lookup(context.Context, string) (idempotency.Record, error) {
	return idempotency.Record{}, idempotency.ErrNotFound
}
