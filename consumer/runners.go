package consumer

import (
	"context"
	"sync"
	"time"
)

// runners are a fixed set of goroutines that run the work, so their stacks,
// grown once by the HTTP and NATS clients, are reused rather than grown for
// every command. The worker starts twice as many as API call slots (see
// call): while some commands call the API, the others claim ids and store
// outcomes, so bookkeeping never holds a slot. Up to Concurrency pieces of
// work wait in the channel, so a goroutine that frees up starts its next
// command without waiting for the fetch loop to be scheduled. Work that
// waited past the start of a shutdown hands its commands back (see
// Draining) rather than running them. docs/performance-notes.md has the
// measurements behind each of these choices.
type runners struct {
	work chan func()
	wg   sync.WaitGroup
	once sync.Once
}

// startRunners starts n goroutines, with room for queued pieces of work
// waiting for one.
func startRunners(n, queued int) *runners {
	r := &runners{work: make(chan func(), queued)}
	for range n {
		r.wg.Go(func() {
			for f := range r.work {
				f()
			}
		})
	}
	return r
}

// start runs f on a free goroutine, waiting for room in the queue; it
// reports false, without running f, when ctx ends first.
func (r *runners) start(ctx context.Context, f func()) bool {
	select {
	case r.work <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop takes no more work and waits for the work started to finish.
func (r *runners) stop() {
	r.once.Do(func() { close(r.work) })
	r.wg.Wait()
}

// stopWithin is stop, waiting at most grace; it reports whether the work
// finished in time (the rest still runs: cancel its context, then stop).
func (r *runners) stopWithin(grace time.Duration) bool {
	r.once.Do(func() { close(r.work) })
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
