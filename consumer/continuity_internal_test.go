package consumer

import (
	"testing"
	"time"
)

// A worker whose keep-alive rounds came late (it was stopped or starved
// past AckWait) may hold deliveries JetStream gave to another worker since:
// until a whole AckWait has passed after the stall, its first deliveries
// claim (awake is false).
func TestContinuityAwake(t *testing.T) {
	const ackWait = 30 * time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		rounds []time.Duration // since t0
		at     time.Duration
		want   bool
	}{
		{"before the first round", nil, 0, false},
		{"rounds on time", []time.Duration{0, 10 * time.Second, 20 * time.Second}, 25 * time.Second, true},
		{"a round overdue now", []time.Duration{0, 10 * time.Second}, 26 * time.Second, false},
		{"just woken, the late round not yet run", []time.Duration{0}, 40 * time.Second, false},
		{"the late round ran", []time.Duration{0, 40 * time.Second}, 41 * time.Second, false},
		{"an AckWait after the stall", []time.Duration{0, 40 * time.Second, 50 * time.Second, 60 * time.Second, 70 * time.Second}, 71 * time.Second, true},
		{"a round a little late is no stall", []time.Duration{0, 14 * time.Second}, 15 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c continuity
			for _, r := range tc.rounds {
				c.round(t0.Add(r), ackWait)
			}
			if got := c.awake(t0.Add(tc.at), ackWait); got != tc.want {
				t.Errorf("awake = %v, want %v", got, tc.want)
			}
		})
	}
}
