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
//   - A client that spends the budget with others (WithShare: replicas of a
//     worker) paces at its share, and its burst is at most its share of what
//     remains, so replicas that start together cannot spend the server's
//     bucket n times over.
//
// Reservations (Client.Reserve) are firm only for the near future: a call
// that may go within firmHorizon gets a place in the limiter. A later one is
// a place in a queue (tentative), which holds no budget: its time is when
// the budget should have room for it, and when it comes back then it takes a
// firm place. A worker hands a command with a tentative reservation back to
// the stream, and the stream may deliver it to another replica; had the
// place been firm, it would have gone unused on this replica, and so would
// the budget it held. And a change of pace (a replica joining or leaving)
// applies to every call more than firmHorizon away.
const (
	maxBurstCalls = 4
	minPace       = 0.25
	lowWindow     = 2 * time.Second
	firmHorizon   = 100 * time.Millisecond
)

type limiterSet struct {
	share func() float64 // nil: the whole budget
	mu    sync.Mutex
	m     map[string]*keyLimiter
}

func newLimiterSet(share func() float64) *limiterSet {
	return &limiterSet{share: share, m: make(map[string]*keyLimiter)}
}

func (s *limiterSet) get(apiKey string) *keyLimiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.m[apiKey]
	if !ok {
		k = &keyLimiter{probe: make(chan struct{}, 1), queue: make(chan struct{}, 1), lim: rate.NewLimiter(rate.Inf, 1), cost: 1, share: s.share}
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
	maxRemaining int            // largest Remaining seen: about the bucket's size
	share        func() float64 // this client's part of the budget (WithShare); nil: all
	// tail is the end of the queue of tentative reservations: the next one
	// is booked there, and each one moves it on by one call at the pace.
	tail time.Time

	spent spent  // units spent per second, over the last minute
	last  Budget // what the last response with the headers said
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
	if status != 429 {
		k.spent.add(time.Now(), max(rl.Cost, 1))
	}
	if rl.Known {
		k.last = Budget{Known: true, Limit: rl.Limit, Remaining: rl.Remaining}
		cost := max(rl.Cost, 1)
		share := k.part()
		perSec := float64(rl.Limit) / 60 * share
		k.maxRemaining = max(k.maxRemaining, rl.Remaining)
		low := max(float64(2*cost), min(perSec*lowWindow.Seconds(), float64(k.maxRemaining)/4))
		pace := perSec * min(1, max(minPace, float64(rl.Remaining)/low))
		if status == 429 {
			pace = perSec * minPace
		}
		burst := min(max(int(float64(rl.Remaining)*share), cost), maxBurstCalls*cost)
		k.cost = cost
		k.lim.SetLimit(rate.Limit(pace))
		k.lim.SetBurst(burst)
	}
	k.learned.Store(true)
}

// part is this client's share of the budget, in (0, 1].
func (k *keyLimiter) part() float64 {
	if k.share != nil {
		if f := k.share(); f > 0 && f < 1 {
			return f
		}
	}
	return 1
}

// Reservation is a place booked in an API key's budget for one call, taken
// without waiting (Client.Reserve). A caller that must not hold anything
// while it waits for the budget (the worker holds an API call slot and a
// goroutine) books first, waits Delay outside (or hands its work back for
// that long and keeps the reservation), then makes the call with a context
// from WithReservation, so the call does not wait in the limiter again.
//
// A reservation for the next 100 ms holds a place in the key's budget; a
// later one holds a place in a queue behind the others, at the pace learned
// so far, and takes its place in the budget when its time comes (Delay),
// at the pace of then, before the reservations made since. A new
// reservation goes first only when the budget has room at once. A 429
// delays every reservation of the key until its Retry-After.
type Reservation struct {
	k      *keyLimiter // nil: no limiter (rate limiting off)
	booked bool        // false while the key's budget is unknown and its probe call is out
	probe  bool        // holds the key's probe slot: the one call allowed while unlearned
	done   atomic.Bool

	// Under k.mu once booked: a tentative reservation becomes firm when
	// its time comes (DelayFrom).
	r         *rate.Reservation
	at        time.Time
	tentative bool          // a place in the queue, not yet in the limiter
	step      time.Duration // how far a tentative one moved the queue's tail
}

// unlimited is every reservation of a client without rate limiting: booked,
// for now, and tied to no key, so sharing it is safe and costs nothing.
var unlimited = &Reservation{booked: true}

// probeRetry is how soon a caller asks again while another call is
// learning a key's budget: about one API round trip.
const probeRetry = 50 * time.Millisecond

// Reserve books the next call of the key that opts select (the client's
// default credentials unless WithCallCredentials) without waiting. Check
// Booked: an unbooked reservation only says when to ask again.
func (c *Client) Reserve(opts ...CallOption) *Reservation {
	if c.limiters == nil {
		return unlimited
	}
	var cc callConfig
	for _, o := range opts {
		o(&cc)
	}
	creds := c.creds
	if cc.creds != nil {
		creds = *cc.creds
	}
	return c.limiters.get(creds.APIKey).reserve(time.Now())
}

func (k *keyLimiter) reserve(now time.Time) *Reservation {
	if !k.learned.Load() {
		select {
		case k.probe <- struct{}{}:
		default:
			return &Reservation{k: k, at: now.Add(probeRetry)}
		}
		if !k.learned.Load() {
			return &Reservation{k: k, at: now, booked: true, probe: true}
		}
		<-k.probe // learned meanwhile
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Booked under k.mu, so reservations of one key keep their order.
	r := &Reservation{k: k, booked: true}
	k.book(r, now, false)
	return r
}

// book gives r a place from now on: a firm one if its call may go within
// firmHorizon, else a tentative one. A new reservation waits behind the
// tentative ones unless the limiter has room at once (room unused is budget
// lost, so a command delivered here takes it); one that comes back at its
// time (again) goes first. It runs under k.mu.
func (k *keyLimiter) book(r *Reservation, now time.Time, again bool) {
	at, cost := now, k.cost
	if k.blockedUntil.After(at) {
		at = k.blockedUntil
	}
	free := at // when the limiter has room for the call
	if lim := k.lim.Limit(); lim != rate.Inf && lim > 0 {
		if short := float64(cost) - k.lim.TokensAt(at); short > 0 {
			free = at.Add(time.Duration(short / float64(lim) * float64(time.Second)))
		}
	}
	queued := k.tail.After(at)
	if free.Sub(at) <= firmHorizon && (again || !queued || !free.After(at)) {
		r.tentative, r.step = false, 0
		r.r = k.lim.ReserveN(at, cost)
		if !r.r.OK() {
			r.r = nil
			r.at = at
			return
		}
		r.at = at.Add(r.r.DelayFrom(at))
		return
	}
	r.tentative, r.r = true, nil
	if again {
		r.at, r.step = free, 0
		return
	}
	step := time.Duration(0)
	if lim := k.lim.Limit(); lim != rate.Inf && lim > 0 {
		step = time.Duration(float64(cost) / float64(lim) * float64(time.Second))
	}
	r.at = free
	if k.tail.After(r.at) {
		r.at = k.tail
	}
	r.step = step
	k.tail = r.at.Add(step)
}

// Booked reports whether the reservation holds a place; when it does not,
// the key's budget is being learned: ask again after Delay.
func (r *Reservation) Booked() bool { return r.booked }

// Delay is how long from now until the call may be made: the booked time,
// or later if a 429 has blocked the key since. A tentative reservation whose
// time has come takes its place in the limiter here, or a new time.
func (r *Reservation) Delay() time.Duration { return r.DelayFrom(time.Now()) }

// DelayFrom is Delay as of now.
func (r *Reservation) DelayFrom(now time.Time) time.Duration {
	if r.k == nil {
		return max(0, r.at.Sub(now))
	}
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	if r.tentative && r.booked && !r.done.Load() && !r.at.After(now.Add(firmHorizon)) {
		r.k.book(r, now, true)
	}
	at := r.at
	if r.k.blockedUntil.After(at) {
		at = r.k.blockedUntil
	}
	return max(0, at.Sub(now))
}

// Cancel gives the place back, for a caller that will not make the call (a
// command that went to another worker, or failed before its call). It does
// nothing once the reservation was used or cancelled.
func (r *Reservation) Cancel() {
	if r.k == nil || !r.done.CompareAndSwap(false, true) {
		return
	}
	r.k.mu.Lock()
	if r.r != nil {
		r.r.Cancel()
	}
	if r.tentative && r.step > 0 && r.k.tail.Equal(r.at.Add(r.step)) {
		r.k.tail = r.at // the last in the queue: its place goes back
	}
	r.k.mu.Unlock()
	if r.probe {
		<-r.k.probe
	}
}

type reservationKey struct{}

// WithReservation returns a context whose next call on r's key uses r
// instead of waiting in the limiter. A reservation serves one call: a
// second call with the same context waits as usual.
func WithReservation(ctx context.Context, r *Reservation) context.Context {
	return context.WithValue(ctx, reservationKey{}, r)
}

// take waits for a call, using the context's reservation when it is one of
// this key's, still unused and booked. It returns what wait returns.
func (k *keyLimiter) take(ctx context.Context) (time.Duration, func(), error) {
	r, _ := ctx.Value(reservationKey{}).(*Reservation)
	if r == nil || r.k != k || !r.booked {
		return k.wait(ctx)
	}
	// A tentative reservation still tentative holds no place: the call
	// waits in the limiter like one without.
	r.Delay()
	k.mu.Lock()
	tentative := r.tentative
	k.mu.Unlock()
	if !r.done.CompareAndSwap(false, true) {
		return k.wait(ctx)
	}
	if tentative {
		return k.wait(ctx)
	}
	release := func() {}
	if r.probe {
		var once sync.Once
		release = func() { once.Do(func() { <-k.probe }) }
	}
	// Normally the caller waited out the delay already; what is left is a
	// 429 that blocked the key since, or a caller that came back early.
	d := r.Delay()
	if d > 0 {
		if err := sleepCtx(ctx, d); err != nil {
			release()
			return d, func() {}, err
		}
	}
	return d, release, nil
}
