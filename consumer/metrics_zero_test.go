package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
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
		{"chatworker_commands_dead_lettered_total", 4 * 6},
		{"chatworker_commands_capped_total", 1},
		{"chatworker_commands_succeeded_total", 4 * 2},
		{"chatworker_commands_received_total", 4 + 1},
		{"chatworker_command_attempts_failed_total", 3},
	} {
		if n, err := testutil.GatherAndCount(reg, tc.metric); err != nil || n != tc.want {
			t.Errorf("%s: %d series before any event (%v), want %d at 0", tc.metric, n, err, tc.want)
		}
	}
}

// execFunc is an Executor from a function.
type execFunc func(ctx context.Context, cmd actions.Command) (contract.Outcome, error)

func (f execFunc) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	return f(ctx, cmd)
}

// TestInFlightFollowsTheGauge: the count a replica's record carries (what
// the console shows as in flight) follows the commands being handled.
func TestInFlightFollowsTheGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	h := workertest.New(t, workertest.NoWorker(), workertest.WithConfig(func(c *consumer.Config) { c.Metrics = m }))
	gate := make(chan struct{})
	exec := execFunc(func(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
		<-gate
		return h.Executor.Execute(ctx, cmd)
	})
	h.Start(exec)
	h.Publish(actions.Note{ID: "n1", ChatID: "c1", Content: "x"})
	h.Publish(actions.Note{ID: "n2", ChatID: "c2", Content: "x"})
	workertest.Eventually(t, 10*time.Second, func() bool { return m.InFlight() == 2 }, "in flight: %d, want 2", m.InFlight())
	close(gate)
	h.Results(2)
	workertest.Eventually(t, 10*time.Second, func() bool { return m.InFlight() == 0 }, "in flight after the results")
}
