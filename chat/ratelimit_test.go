package chat

import (
	"testing"
	"time"
)

// learned returns a key limiter that has learned a budget of perMin units a
// minute with plenty remaining, as after a first response.
func learned(perMin int) *keyLimiter {
	k := newLimiterSet(nil).get("k")
	k.observe(200, RateLimit{Known: true, Cost: 1, Limit: perMin, Remaining: perMin}, 0)
	return k
}

func TestReservationsBookConsecutivePlacesWithoutWaiting(t *testing.T) {
	k := learned(600) // 10 calls a second
	now := time.Now()
	var last time.Duration
	for i := range 10 {
		r := k.reserve(now)
		if !r.Booked() {
			t.Fatalf("reservation %d not booked", i)
		}
		d := r.DelayFrom(now)
		if step := d - last; i > 0 && d > 0 && (step < 99*time.Millisecond || step > 101*time.Millisecond) && last > 0 {
			t.Fatalf("reservation %d: %v after the previous one, want 100ms", i, step)
		}
		if d < last {
			t.Fatalf("reservation %d: delay %v before the previous %v", i, d, last)
		}
		last = d
	}
	if last < 500*time.Millisecond {
		t.Fatalf("the 10th call in the same instant may start in %v: the reservations did not spend the budget", last)
	}
}

func TestCancelledReservationGivesItsPlaceBack(t *testing.T) {
	k := learned(600)
	now := time.Now()
	var r *Reservation
	for r = k.reserve(now); r.DelayFrom(now) == 0; r = k.reserve(now) {
	}
	last := k.reserve(now)
	want := last.DelayFrom(now)
	last.Cancel()
	last.Cancel() // idempotent
	if d := k.reserve(now).DelayFrom(now); !near(d, want) {
		t.Fatalf("after a cancel the next place is %v away, want the cancelled one's (%v)", d, want)
	}
}

func TestUnlearnedKeyBooksOneProbeAtATime(t *testing.T) {
	k := newLimiterSet(nil).get("k")
	now := time.Now()
	probe := k.reserve(now)
	if !probe.Booked() || probe.DelayFrom(now) != 0 {
		t.Fatalf("first reservation on an unknown budget: booked %v, delay %v; want booked at once", probe.Booked(), probe.DelayFrom(now))
	}
	second := k.reserve(now)
	if second.Booked() || second.DelayFrom(now) != probeRetry {
		t.Fatalf("second reservation while probing: booked %v, delay %v; want unbooked, ask again in %v", second.Booked(), second.DelayFrom(now), probeRetry)
	}
	probe.Cancel()
	if again := k.reserve(now); !again.Booked() {
		t.Fatal("the probe slot was not given back by Cancel")
	}
}

func TestCallWithReservationDoesNotBookAgain(t *testing.T) {
	k := learned(600)
	now := time.Now()
	var r *Reservation
	for r = k.reserve(now); r.DelayFrom(now) == 0; r = k.reserve(now) {
	}
	// r is booked 100ms after the last free place; the place after it is
	// what the next reservation gets, unless taking r booked another.
	next := k.reserve(now)
	want := next.DelayFrom(now)
	next.Cancel()
	r.at = time.Now() // as though its delay were over
	_, release, err := k.take(WithReservation(t.Context(), r))
	if err != nil {
		t.Fatal(err)
	}
	release()
	if d := k.reserve(now).DelayFrom(now); !near(d, want) {
		t.Fatalf("after the call with a reservation the next place is %v away, want %v: the call booked a second place", d, want)
	}
	if r.Cancel(); !r.done.Load() {
		t.Fatal("the reservation was not marked used")
	}
}

// near: equal but for the moments between the calls (rate.Reservation's
// Cancel reads the clock itself).
func near(a, b time.Duration) bool { return (a - b).Abs() < 5*time.Millisecond }

// TestShareSpacesCallsByTheClientsPart: a client at a third of the budget
// (WithShare, as one of three replicas) books its calls three times as far
// apart, and a new share applies from the next response.
func TestShareSpacesCallsByTheClientsPart(t *testing.T) {
	share := 1.0 / 3
	k := newLimiterSet(func() float64 { return share }).get("k")
	spacing := func() time.Duration {
		t.Helper()
		k.observe(200, RateLimit{Known: true, Cost: 1, Limit: 600, Remaining: 600}, 0) // 10 calls a second in all
		now := time.Now()
		var prev, last time.Duration
		for range 12 { // past the burst
			prev, last = last, k.reserve(now).DelayFrom(now)
		}
		return last - prev
	}
	if d := spacing(); !near(d, 300*time.Millisecond) {
		t.Fatalf("at a third of 10 calls/s, calls are %v apart, want 300ms", d)
	}
	share = 1 // the other replicas left
	if d := spacing(); d > 300*time.Millisecond || !near(d, 100*time.Millisecond) {
		t.Fatalf("at the whole budget, calls are %v apart, want 100ms", d)
	}
	share = 7 // nonsense counts as the whole budget
	if d := spacing(); !near(d, 100*time.Millisecond) {
		t.Fatalf("with a share above 1, calls are %v apart, want 100ms", d)
	}
}

// TestTentativeReservationsHoldNoBudget: reservations beyond the near future
// are places in a queue, not budget. A worker hands their commands back to
// the stream, which may deliver them to another replica; if those places
// had been booked in the limiter they would go unused, and so would the
// budget they held (a fleet of four replicas used 38 % of it that way).
func TestTentativeReservationsHoldNoBudget(t *testing.T) {
	k := learned(600) // 10 calls a second
	now := time.Now()
	var far []*Reservation
	for range 40 {
		if r := k.reserve(now); r.DelayFrom(now) > 100*time.Millisecond {
			far = append(far, r)
		}
	}
	if len(far) < 30 {
		t.Fatalf("%d of 40 reservations at once are far, want most", len(far))
	}
	// None of them comes back (their commands went to other replicas):
	// two seconds on, the limiter has room at once for a new command.
	later := now.Add(2 * time.Second)
	if d := k.reserve(later).DelayFrom(later); d != 0 {
		t.Fatalf("two seconds after 40 reservations none of which was used, a new call waits %v, want 0", d)
	}
}

// TestTentativeReservationTakesItsPlaceWhenItComes: a reservation in the
// queue gets its firm place when its time comes, at the pace of that moment.
// Forty calls booked at 10 a second, then three replicas join: whatever was
// booked, the calls keep to a quarter of the budget from then on.
func TestTentativeReservationTakesItsPlaceWhenItComes(t *testing.T) {
	share := 1.0
	k := newLimiterSet(func() float64 { return share }).get("k")
	k.observe(200, RateLimit{Known: true, Cost: 1, Limit: 600, Remaining: 600}, 0)
	now := time.Now()
	var rs []*Reservation
	for range 40 {
		rs = append(rs, k.reserve(now))
	}
	share = 0.25 // 2.5 calls a second
	k.observe(200, RateLimit{Known: true, Cost: 1, Limit: 600, Remaining: 600}, 0)
	span := now.Add(4 * time.Second)
	calls := 0
	for _, r := range rs {
		for at := now; ; {
			at = at.Add(r.DelayFrom(at)) // back at its time
			if !r.tentative {
				break
			}
		}
		if !r.at.After(span) {
			calls++
		}
	}
	// The two booked before the join, a burst of four, then 2.5 a second.
	if most := 2 + 4 + 4*2.5 + 1; float64(calls) > most {
		t.Fatalf("%d of the 40 calls booked before three replicas joined go within 4 s, want at most %v", calls, most)
	}
}

// TestShareScalesTheBurst: replicas that start together may each spend only
// their share of what the API says remains.
func TestShareScalesTheBurst(t *testing.T) {
	k := newLimiterSet(func() float64 { return 0.25 }).get("k")
	k.observe(200, RateLimit{Known: true, Cost: 1, Limit: 600, Remaining: 8}, 0)
	now := time.Now().Add(time.Second) // the burst has filled
	at := 0
	for range 10 {
		if k.reserve(now).DelayFrom(now) == 0 {
			at++
		}
	}
	if at != 2 {
		t.Fatalf("with 8 units left and a quarter share, %d calls may go at once, want 2", at)
	}
}
