package consumer

import (
	"time"

	"github.com/chatworker/worker/internal/backoff"
)

// Infrastructure failures
//
// A command whose id could not be claimed, or whose result or dead letter
// could not be stored, has not failed: NATS or the idempotency store has. It
// goes back to the stream after infraDelay, which grows with its deliveries
// to a ceiling, and spends none of its retry budget. With no limit on
// deliveries (Topology.MaxDeliver's default), it waits out an outage of any
// length up to the command stream's retention.

// Hand-back delays after an infrastructure failure.
const (
	infraDelayMin = 100 * time.Millisecond
	infraDelayMax = 30 * time.Second
)

// infraDelay is the hand-back delay of a command delivered n times whose
// handling failed for the infrastructure's sake: doubling from
// infraDelayMin to infraDelayMax, with equal jitter, so a backlog does not
// return in step and hammer a store that is coming back.
func infraDelay(delivered uint64) time.Duration {
	// Equal jitter draws from the upper half of the ceiling: the first
	// ceiling is twice the shortest delay. The ceiling reaches the maximum
	// long before 64 deliveries.
	return backoff.Exponential{Initial: 2 * infraDelayMin, Max: infraDelayMax}.Equal(int(min(max(delivered, 1), 64)))
}
