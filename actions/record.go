package actions

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultIdempotencyBucket is the key-value bucket where the worker keeps a
// record per command id.
const DefaultIdempotencyBucket = "CHAT_IDEMPOTENCY"

// WorkerRecord is what the worker's idempotency record says of a command id,
// as far as apps need it: whether it succeeded, who holds it, how often it
// was tried. The idempotency package writes it; tests that run both hold
// the two readings together.
type WorkerRecord struct {
	Hash           string    `json:"hash"`
	State          string    `json:"state"` // pending | succeeded
	Owner          string    `json:"owner,omitempty"`
	LeaseExpires   time.Time `json:"lease_expires,omitzero"`
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	APIStatus      int       `json:"api_status,omitempty"`
	// CompletedAt is when the success was recorded (the time the server
	// stored the record).
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Digest is the ResponseDigest of the API's response; the result
	// carries the response.
	Digest string `json:"digest,omitempty"`
}

// The record states the worker writes.
const (
	recordPending   = "pending"
	recordSucceeded = "succeeded"
)

// lookupRecord reads id's record, or returns nil when there is none (no
// bucket, no key). It only reads: apps need no right to write the bucket.
func lookupRecord(ctx context.Context, js jetstream.JetStream, bucket, id string) (*WorkerRecord, error) {
	if bucket == "" {
		bucket = DefaultIdempotencyBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the idempotency bucket %s: %w", bucket, err)
	}
	// The worker keys records by the base64url of the id, so any id is a
	// valid key.
	e, err := kv.Get(ctx, base64.RawURLEncoding.EncodeToString([]byte(id)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the idempotency record of %q: %w", id, err)
	}
	var rec WorkerRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("read the idempotency record of %q: %w", id, err)
	}
	if rec.State == recordSucceeded && rec.CompletedAt.IsZero() {
		rec.CompletedAt = e.Created().UTC() // the worker leaves it to the server's timestamp
	}
	return &rec, nil
}
