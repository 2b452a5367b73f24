package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/workertest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// TestWatchBacklogLeavesSchedulesOut: a command scheduled an hour ahead is
// no command waiting, so the oldest-command gauge (and the alert on it)
// ignores it while the pending-schedules gauge counts it; a command
// published after it is the oldest command.
func TestWatchBacklogLeavesSchedulesOut(t *testing.T) {
	p := newBarePipeline(t)
	m := consumer.NewOnCallMetrics(prometheus.NewRegistry())
	if _, err := actions.ScheduleAt(t.Context(), p.JS, actions.Note{ID: "later", ChatID: "c1", Content: "x"},
		time.Now().Add(time.Hour), p.Config.Topology.Subjects); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumer.WatchBacklog(ctx, p.JS, p.Config.Topology, m, 10*time.Millisecond, zaptest.NewLogger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })

	workertest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.SchedulesPending) == 1 },
		"the pending schedule is not counted")
	if age := testutil.ToFloat64(m.OldestCommandAge); age != 0 {
		t.Fatalf("oldest command age %.3fs with only a schedule in the stream, want 0", age)
	}
	published := time.Now()
	p.Publish(actions.Send{ID: "now-1", ChatID: "c2", Content: "hi"})
	workertest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.OldestCommandAge) > 0 },
		"oldest command age stayed 0 with a command waiting")
	if age, most := testutil.ToFloat64(m.OldestCommandAge), time.Since(published).Seconds(); age > most {
		t.Errorf("oldest command age %.3fs, but the command was published %.3fs ago: the schedule counted", age, most)
	}
}

// TestWatchBacklogLeavesQuietHoursOut: a command the visitor's quiet hours
// hold is expected to wait, so the oldest-command gauge looks past it.
func TestWatchBacklogLeavesQuietHoursOut(t *testing.T) {
	p := newBarePipeline(t)
	m := consumer.NewOnCallMetrics(prometheus.NewRegistry())
	now := time.Now().UTC()
	quiet := &actions.QuietHours{Start: now.Add(-time.Hour).Format("15:04"), End: now.Add(time.Hour).Format("15:04"), TZ: "UTC"}
	p.Publish(actions.Send{ID: "held", ChatID: "c1", Content: "hi", QuietHours: quiet})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumer.WatchBacklog(ctx, p.JS, p.Config.Topology, m, 10*time.Millisecond, zaptest.NewLogger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(1100 * time.Millisecond) // the held command is a second old: it would show
	if age := testutil.ToFloat64(m.OldestCommandAge); age != 0 {
		t.Fatalf("oldest command age %.3fs with only a held command in the stream, want 0", age)
	}
	published := time.Now()
	p.Publish(actions.Send{ID: "now-1", ChatID: "c2", Content: "hi"})
	workertest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.OldestCommandAge) > 0 },
		"oldest command age stayed 0 with a command waiting")
	if age, most := testutil.ToFloat64(m.OldestCommandAge), time.Since(published).Seconds(); age > most {
		t.Errorf("oldest command age %.3fs, but the command was published %.3fs ago: the held one counted", age, most)
	}
}
