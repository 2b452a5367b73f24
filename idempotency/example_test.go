package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
)

// How a worker runs one command: claim, call, then complete or release.
// (Not run: it needs a NATS server.)
func Example() {
	ctx := context.Background()
	var js jetstream.JetStream // from jetstream.New(nc)
	store, err := idempotency.Open(ctx, js, idempotency.Config{Owner: "host-a/4242"})
	if err != nil {
		return
	}

	body := []byte(`{"id":"8c0f3a52","type":"send","chat_id":"abc123","content":"Hello!"}`)
	c, err := store.Claim(ctx, "8c0f3a52", idempotency.Hash(body))
	var dup *idempotency.DuplicateError
	var busy *idempotency.BusyError
	switch {
	case errors.As(err, &dup):
		_ = dup.Record.Response // publish a "duplicate" result with the original response, ack
		return
	case errors.As(err, &busy):
		_ = busy.RetryIn // NakWithDelay(busy.RetryIn): someone else is running it
		return
	case errors.Is(err, idempotency.ErrConflict):
		return // dead letter with class "conflict"
	case err != nil:
		return // retryable: nak
	}

	now := time.Now()
	c.Attempts++
	if c.FirstAttemptAt.IsZero() {
		c.FirstAttemptAt = now
	}
	c.LastAttemptAt = now
	status, resp, callErr := 200, json.RawMessage(`{"ok":true}`), error(nil) // call the API here

	if callErr != nil {
		_ = store.Release(ctx, c) // keeps the attempt count; a later delivery may run it again
		return
	}
	rec, err := store.Complete(ctx, c, contract.Outcome{APIStatus: status, Response: resp})
	if errors.Is(err, idempotency.ErrLeaseLost) {
		// The call outlived the lease (Extend keeps it alive) and another
		// worker took the id over; its outcome is the one that gets recorded.
		return
	}
	_ = rec // publish the "succeeded" result from rec, then ack
}
