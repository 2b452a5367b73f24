package consumer

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy is the budget and pace of retries for one command. The budget
// spans all deliveries: attempts and the first attempt's time live in the
// idempotency record, so a restart does not reset them.
type RetryPolicy struct {
	MaxAttempts     int           // API calls in all; 8
	MaxElapsed      time.Duration // from the first attempt; 1 hour
	InitialInterval time.Duration // 200 ms
	MaxInterval     time.Duration // 5 minutes
	// InProcessMax is the longest wait spent in-process: a longer one hands
	// the command back with NakWithDelay, so no goroutine sleeps for minutes
	// and the slot serves other commands meanwhile.
	InProcessMax time.Duration // 2 s
}

// WithDefaults returns p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 8
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = time.Hour
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = 200 * time.Millisecond
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 5 * time.Minute
	}
	if p.InProcessMax == 0 {
		p.InProcessMax = 2 * time.Second
	}
	return p
}

// Delay is the wait before the attempt after the given number of attempts:
// exponential with full jitter (a uniform draw below the exponential cap),
// but never shorter than the server's hint (Retry-After).
//
// The exponential schedule comes from backoff.ExponentialBackOff; the draw
// is ours because the attempt count is read back from the idempotency
// record on each delivery, so the schedule must be a function of it rather
// than the state of one backoff object.
func (p RetryPolicy) Delay(attempts int, hint time.Duration) time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithRandomizationFactor(0),
		backoff.WithMultiplier(2),
		backoff.WithMaxElapsedTime(0),
	)
	ceiling := b.NextBackOff()
	for i := 1; i < attempts && ceiling < p.MaxInterval; i++ {
		ceiling = b.NextBackOff()
	}
	d := time.Duration(rand.Int64N(int64(ceiling)) + 1)
	return max(d, hint)
}

// Exhausted reports whether a command that has made attempts API calls,
// starting at first, may not be tried again.
func (p RetryPolicy) Exhausted(attempts int, first, now time.Time) bool {
	return attempts >= p.MaxAttempts || (!first.IsZero() && now.Sub(first) >= p.MaxElapsed)
}
