// Package idempotency stores the worker's idempotency keys (one record per
// command id) in a NATS JetStream key-value bucket, so a command is executed at
// most once at a time and never again once it has succeeded. A worker claims an
// id with a lease before calling the API; every change is a revision-checked
// write, so racing workers cannot both win a claim, and a worker whose lease was
// taken over cannot overwrite the record. Attempt counts and times live in the
// record and survive redeliveries, failures and restarts; successes are kept for
// the bucket's TTL.
package idempotency
