package consumer_test

import (
	"testing"

	"github.com/chatworker/worker/consumer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCountersExistAtZero: a worker's counters have their series from the
// start, at 0, for every known type and class, so an alert on their
// increase sees the first dead letter after a restart too.
func TestCountersExistAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	consumer.NewMetrics(reg)
	for _, tc := range []struct {
		metric string
		want   int
	}{
		{"chatworker_commands_dead_lettered_total", 4 * 5},
		{"chatworker_commands_succeeded_total", 4 * 2},
		{"chatworker_commands_received_total", 4 + 1},
		{"chatworker_command_attempts_failed_total", 3},
	} {
		if n, err := testutil.GatherAndCount(reg, tc.metric); err != nil || n != tc.want {
			t.Errorf("%s: %d series before any event (%v), want %d at 0", tc.metric, n, err, tc.want)
		}
	}
}
