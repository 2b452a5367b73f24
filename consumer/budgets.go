package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/chatworker/worker/chat"
)

// budgets paces commands by their project's rate budget outside the API call
// slots, and keeps the bookings of commands handed back to wait for theirs.
type budgets struct {
	src     Projects
	metrics ProjectMetrics
	now     func() time.Time
	// holdFor is how long past its booked time a command handed back to
	// wait for its budget keeps its booking (AckWait).
	holdFor time.Duration

	mu sync.Mutex
	// held are the bookings of commands handed back to wait for their
	// budget, by stream sequence, for when they are delivered again. One
	// delivered to another worker leaves its booking here until it expires.
	held map[uint64]heldReservation
}

type heldReservation struct {
	r       *chat.Reservation
	expires time.Time
}

// reservation returns the booking a command handed back earlier holds, or
// books a new one.
func (b *budgets) reservation(project string, seq uint64) *chat.Reservation {
	b.mu.Lock()
	h, ok := b.held[seq]
	delete(b.held, seq)
	b.mu.Unlock()
	if ok {
		return h.r
	}
	return b.src.Reserve(project)
}

// hold keeps r for the command at seq, handed back until r's time.
func (b *budgets) hold(seq uint64, r *chat.Reservation, ttl time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.held[seq]; ok {
		old.r.Cancel()
	}
	b.held[seq] = heldReservation{r: r, expires: b.now().Add(r.Delay() + ttl)}
}

// sweep cancels bookings whose command did not come back to this worker.
func (b *budgets) sweep() {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for seq, h := range b.held {
		if now.After(h.expires) {
			h.r.Cancel()
			delete(b.held, seq)
		}
	}
}

func (b *budgets) sweepEvery(ctx context.Context, every time.Duration) { tick(ctx, every, b.sweep) }

// budget waits for the project's rate budget for the command at the stream
// sequence seq, outside any API call slot. It returns the reservation to
// call with, or, when the wait would be longer than is worth a goroutine, a
// *rateWaitError saying how long to hand the command back for (the booking
// is then held for its return); errStopping when ctx ends first.
func (b *budgets) budget(ctx context.Context, project string, seq uint64) (*chat.Reservation, error) {
	for {
		r := b.reservation(project, seq)
		wait := r.Delay()
		if wait > rateWaitInProcess {
			if r.Booked() {
				b.hold(seq, r, b.holdFor)
			}
			b.observeWait(project, wait)
			return nil, &rateWaitError{delay: wait}
		}
		if wait > 0 {
			b.observeWait(project, wait)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return nil, errStopping
			}
		}
		if r.Booked() {
			return r, nil
		}
		// The budget was being learned: ask again.
	}
}

func (b *budgets) observeWait(project string, d time.Duration) {
	if b.metrics != nil {
		b.metrics.ObserveProjectRateLimitWait(project, d)
	}
}
