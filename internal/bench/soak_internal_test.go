package bench

import (
	"sync/atomic"
	"testing"
	"time"
)

// The soak counts each command once, however often its result arrives, and
// fails the run on the duplicates: a doubled command must not pass for a
// completed one.
func TestSoakCounter(t *testing.T) {
	tests := []struct {
		name              string
		results           []int
		wantCount, wantDu int64
	}{
		{"each once", []int{0, 1, 2}, 3, 0},
		{"a duplicate", []int{0, 1, 1, 2}, 3, 1},
		{"out of range ignored", []int{0, 7}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &soakCounter{start: time.Now(), seen: make([]atomic.Bool, 3)}
			for _, i := range tt.results {
				c.result(i)
			}
			if c.count.Load() != tt.wantCount || c.dups.Load() != tt.wantDu {
				t.Errorf("count %d, duplicates %d; want %d and %d", c.count.Load(), c.dups.Load(), tt.wantCount, tt.wantDu)
			}
			if c.lastNS.Load() <= 0 {
				t.Error("no completion time recorded")
			}
		})
	}
}

// waitFor returns once the count is reached, and fails, rather than
// waiting forever, when nothing completes for the stall time.
func TestSoakCounterWaitFor(t *testing.T) {
	c := &soakCounter{start: time.Now(), seen: make([]atomic.Bool, 2)}
	c.result(0)
	if err := c.waitFor(t.Context(), 1, time.Minute); err != nil {
		t.Fatalf("count reached: %v", err)
	}
	if err := c.waitFor(t.Context(), 2, 50*time.Millisecond); err == nil {
		t.Fatal("no error when nothing completes")
	}
}
