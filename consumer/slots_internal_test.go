package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// queued waits until project has n waiters.
func (s *slots) waitQueued(t *testing.T, project string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.queues[project])
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters of %s, want %d", got, project, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Slots go to the waiting projects in turn: a project with a queue of
// ready calls does not take every slot ahead of another that came later.
func TestSlotsAreSharedInTurnBetweenProjects(t *testing.T) {
	tests := []struct {
		name    string
		waiters []string // in arrival order
		want    string   // order in which they get a slot
	}{
		{"one project", []string{"a1", "a2", "a3"}, "a1 a2 a3"},
		{"a backlog, then another project", []string{"a1", "a2", "a3", "b1"}, "a1 b1 a2 a3"},
		{"three projects", []string{"a1", "a2", "b1", "b2", "c1"}, "a1 b1 c1 a2 b2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSlots(1)
			if !s.acquire(t.Context(), nil, "x") {
				t.Fatal("no free slot")
			}
			got := make(chan string, len(tt.waiters))
			for _, w := range tt.waiters {
				project := w[:1]
				s.mu.Lock()
				n := len(s.queues[project])
				s.mu.Unlock()
				go func() {
					if s.acquire(t.Context(), nil, project) {
						got <- w
					}
				}()
				s.waitQueued(t, project, n+1)
			}
			var order []string
			for range tt.waiters {
				s.release()
				order = append(order, <-got)
			}
			if fmt.Sprint(order) != "["+tt.want+"]" {
				t.Errorf("slots went to %v, want [%s]", order, tt.want)
			}
		})
	}
}

// A waiter that gives up leaves the queue, and a slot handed to it as it
// gave up goes to the next waiter.
func TestSlotWaiterThatGivesUpPassesItOn(t *testing.T) {
	s := newSlots(1)
	s.acquire(t.Context(), nil, "x")
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan bool)
	go func() { gaveUp <- s.acquire(ctx, nil, "a") }()
	s.waitQueued(t, "a", 1)
	got := make(chan bool)
	go func() { got <- s.acquire(t.Context(), nil, "b") }()
	s.waitQueued(t, "b", 1)
	cancel()
	if <-gaveUp {
		t.Fatal("a cancelled waiter got a slot")
	}
	s.release()
	if !<-got {
		t.Fatal("the next waiter got no slot")
	}
	s.release()
	if s.free != 1 || len(s.turn) != 0 || len(s.queues) != 0 {
		t.Errorf("left behind: %d free, turn %v, queues %v", s.free, s.turn, s.queues)
	}
}
