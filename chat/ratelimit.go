package chat

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The adaptive limiter keeps a busy client under the API's budget (units per
// minute, refilled continuously, one budget per API key).
//
//   - Until the first response the budget is unknown, so calls go one at a
//     time (a probe) instead of spending the budget blind.
//   - Each response's X-RateLimit-Limit sets the pace to Limit/60 units per
//     second, with a burst of at most a few calls.
//   - Below a low-water mark of X-RateLimit-Remaining (two seconds of budget,
//     at most a quarter of the largest Remaining seen) the pace shrinks in
//     proportion, down to a quarter. The server's bucket then settles above
//     zero even when other clients share the key, and jitter cannot empty it.
//   - Callers wait one at a time, so a new pace applies from the next call.
//   - A 429 blocks every caller of that key until its Retry-After.
//   - A response without the headers leaves the key unlimited (apart from
//     honouring 429s), since there is nothing to learn from.
const (
	maxBurstCalls = 4
	minPace       = 0.25
	lowWindow     = 2 * time.Second
)

type limiterSet struct {
	mu sync.Mutex
	m  map[string]*keyLimiter
}

func newLimiterSet() *limiterSet { return &limiterSet{m: make(map[string]*keyLimiter)} }

func (s *limiterSet) get(apiKey string) *keyLimiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.m[apiKey]
	if !ok {
		k = &keyLimiter{probe: make(chan struct{}, 1), queue: make(chan struct{}, 1), lim: rate.NewLimiter(rate.Inf, 1), cost: 1}
		s.m[apiKey] = k
	}
	return k
}

type keyLimiter struct {
	probe chan struct{} // a slot for the one call allowed while unlearned
	// queue lets one caller at a time wait on lim. rate.Limiter would let
	// every caller reserve a future slot at the current pace, so a change
	// of pace would reach the wire only after all of them; one waiter at a
	// time means a new pace applies from the next call.
	queue   chan struct{}
	learned atomic.Bool
	lim     *rate.Limiter

	mu           sync.Mutex
	blockedUntil time.Time
	cost         int
	maxRemaining int // largest Remaining seen: about the bucket's size
}

// wait blocks until a call may be made. It returns how long it waited and a
// release func to call once the response has been observed.
func (k *keyLimiter) wait(ctx context.Context) (time.Duration, func(), error) {
	start := time.Now()
	waited := func() time.Duration { return time.Since(start) }
	release := func() {}
	blocked := false
	if !k.learned.Load() {
		select {
		case k.probe <- struct{}{}:
		default:
			blocked = true
			select {
			case k.probe <- struct{}{}:
			case <-ctx.Done():
				return waited(), release, ctx.Err()
			}
		}
		if k.learned.Load() {
			<-k.probe
		} else {
			var once sync.Once
			release = func() { once.Do(func() { <-k.probe }) }
		}
	}
	select {
	case k.queue <- struct{}{}:
	default:
		blocked = true
		select {
		case k.queue <- struct{}{}:
		case <-ctx.Done():
			release()
			return waited(), func() {}, ctx.Err()
		}
	}
	defer func() { <-k.queue }()
	fail := func(err error) (time.Duration, func(), error) {
		release()
		return waited(), func() {}, err
	}
	for {
		k.mu.Lock()
		d, cost := time.Until(k.blockedUntil), k.cost
		k.mu.Unlock()
		if d <= 0 {
			r := k.lim.ReserveN(time.Now(), cost)
			if !r.OK() {
				// Burst below cost cannot happen (observe keeps burst >= cost),
				// but never spin: fall through unlimited.
				break
			}
			d = r.Delay()
			if d <= 0 {
				break
			}
			if err := sleepCtx(ctx, d); err != nil {
				r.Cancel()
				return fail(err)
			}
			blocked = true
			break
		}
		blocked = true
		if err := sleepCtx(ctx, d); err != nil {
			return fail(err)
		}
	}
	if !blocked {
		return 0, release, nil
	}
	return waited(), release, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe learns from a response.
func (k *keyLimiter) observe(status int, rl RateLimit, retryAfter time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if status == 429 {
		d := retryAfter
		if d <= 0 {
			d = time.Second
		}
		if until := time.Now().Add(d); until.After(k.blockedUntil) {
			k.blockedUntil = until
		}
	}
	if rl.Known {
		cost := max(rl.Cost, 1)
		perSec := float64(rl.Limit) / 60
		k.maxRemaining = max(k.maxRemaining, rl.Remaining)
		low := max(float64(2*cost), min(perSec*lowWindow.Seconds(), float64(k.maxRemaining)/4))
		pace := perSec * min(1, max(minPace, float64(rl.Remaining)/low))
		if status == 429 {
			pace = perSec * minPace
		}
		burst := min(max(rl.Remaining, cost), maxBurstCalls*cost)
		k.cost = cost
		k.lim.SetLimit(rate.Limit(pace))
		k.lim.SetBurst(burst)
	}
	k.learned.Store(true)
}
