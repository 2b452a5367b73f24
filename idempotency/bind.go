package idempotency

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Bind returns the store in an existing bucket without creating or changing
// it, for readers such as apps asking what became of a command: they need
// only read access to the bucket. Use its Lookup; claims need Open.
func Bind(ctx context.Context, js jetstream.JetStream, bucket string) (*KV, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("idempotency: bucket %q: %w", bucket, err)
	}
	return &KV{kv: kv}, nil
}
