// Package backoff is the one exponential backoff of the worker: the retry
// policy's delays, the per-chat order check's waits and short retries of a
// store write all draw from it. It computes its schedule with
// cenkalti/backoff and adds the jitter each caller needs.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	cbackoff "github.com/cenkalti/backoff/v5"
)

// Exponential doubles from Initial up to Max.
type Exponential struct {
	Initial, Max time.Duration
}

// Ceiling is the n-th interval (n ≥ 1; less counts as 1): Initial × 2^(n-1),
// at most Max. It is a function of n, not of a backoff's state, because
// callers read n back from a record on each delivery.
func (e Exponential) Ceiling(n int) time.Duration {
	b := cbackoff.ExponentialBackOff{InitialInterval: e.Initial, MaxInterval: e.Max, Multiplier: 2, RandomizationFactor: 0}
	b.Reset()
	ceiling := b.NextBackOff()
	for i := 1; i < n && ceiling < e.Max; i++ {
		ceiling = b.NextBackOff()
	}
	return min(ceiling, e.Max)
}

// Full draws uniformly from (0, Ceiling(n)]: full jitter, which spreads
// retries of many commands that failed together.
func (e Exponential) Full(n int) time.Duration {
	return time.Duration(rand.Int64N(int64(e.Ceiling(n)))) + 1
}

// Equal draws uniformly from [Ceiling(n)/2, Ceiling(n)): never much sooner
// than the schedule, for waits that poll something about to change.
func (e Exponential) Equal(n int) time.Duration {
	c := e.Ceiling(n)
	return c/2 + time.Duration(rand.Int64N(int64(c-c/2)))
}

// Retry calls fn until it succeeds, returns an error wrapped by Permanent,
// has been called tries times, or ctx is done, waiting Equal(n) after the
// n-th failure.
func Retry(ctx context.Context, tries int, e Exponential, fn func() error) error {
	for n := 1; ; n++ {
		err := fn()
		var p *cbackoff.PermanentError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.Err
		case n >= tries || ctx.Err() != nil:
			return err
		}
		t := time.NewTimer(e.Equal(n))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// Permanent marks an error Retry must not retry.
func Permanent(err error) error { return cbackoff.Permanent(err) }

// Limit stops b after retries intervals. cenkalti/backoff v5 bounds
// retries in its Retry function rather than in a BackOff, and a BackOff is
// what chat.WithRetry takes.
func Limit(b cbackoff.BackOff, retries int) cbackoff.BackOff {
	return &limited{b: b, retries: retries}
}

type limited struct {
	b          cbackoff.BackOff
	retries, n int
}

func (l *limited) NextBackOff() time.Duration {
	if l.n >= l.retries {
		return cbackoff.Stop
	}
	l.n++
	return l.b.NextBackOff()
}

func (l *limited) Reset() {
	l.n = 0
	l.b.Reset()
}
