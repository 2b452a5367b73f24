package consumer

import (
	"context"
	"slices"
	"sync"
)

// slots are the worker's API call slots (Config.Concurrency), handed out in
// turn between the projects waiting for one: a project whose commands are
// all ready at once (a slow API, a large budget, or rate limiting off)
// takes one slot in turn with every other waiting project rather than all of
// them in arrival order. Within a project, first come first served.
// Uncontended, a slot costs a lock and a decrement.
type slots struct {
	mu     sync.Mutex
	free   int
	queues map[string][]chan struct{} // waiters by project
	turn   []string                   // projects with waiters, next first
}

func newSlots(n int) *slots { return &slots{free: n, queues: map[string][]chan struct{}{}} }

// acquire waits for a slot for a call of project. It reports false, holding
// nothing, when ctx ends or stop closes first.
func (s *slots) acquire(ctx context.Context, stop <-chan struct{}, project string) bool {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if len(s.queues[project]) == 0 {
		s.turn = append(s.turn, project)
	}
	s.queues[project] = append(s.queues[project], ch)
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	case <-stop:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
		// Handed a slot while giving up: pass it on.
		s.releaseLocked()
		return false
	default:
	}
	q := slices.DeleteFunc(s.queues[project], func(c chan struct{}) bool { return c == ch })
	if len(q) == 0 {
		delete(s.queues, project)
		s.turn = slices.DeleteFunc(s.turn, func(p string) bool { return p == project })
	} else {
		s.queues[project] = q
	}
	return false
}

// release frees a slot, handing it to the next project in turn.
func (s *slots) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *slots) releaseLocked() {
	if len(s.turn) == 0 {
		s.free++
		return
	}
	p := s.turn[0]
	s.turn = s.turn[1:]
	q := s.queues[p]
	ch := q[0]
	if q = q[1:]; len(q) > 0 {
		s.queues[p] = q
		s.turn = append(s.turn, p) // its next waiter goes to the back
	} else {
		delete(s.queues, p)
	}
	close(ch)
}
