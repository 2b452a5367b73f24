package actions

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

// lookupRecord reads id's record, or returns nil when there is none (no
// bucket, no key). It only reads: apps need no right to write the bucket.
func lookupRecord(ctx context.Context, js jetstream.JetStream, bucket, id string) (*WorkerRecord, error) {
	if bucket == "" {
		bucket = contract.DefaultIdempotencyBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the idempotency bucket %s: %w", bucket, err)
	}
	e, err := kv.Get(ctx, contract.IdempotencyKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the idempotency record of %q: %w", id, err)
	}
	rec, err := contract.ReadIdempotencyRecord(e.Key(), e.Value(), e.Created())
	if err != nil {
		return nil, fmt.Errorf("read the idempotency record of %q: %w", id, err)
	}
	// Status reports what apps read of a record; the response is in the
	// result, and the worker's own bookkeeping stays out of Status's JSON.
	rec.Response, rec.Sequence, rec.Abandoned = nil, 0, 0
	return &rec, nil
}
