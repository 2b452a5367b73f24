package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// TestWatchBacklog: the oldest command's age follows the commands waiting
// in the stream, whether or not a worker runs, and returns to 0 once they
// are done; the dead-letter count follows CHAT_DLQ.
func TestWatchBacklog(t *testing.T) {
	p := newBarePipeline(t)
	m := consumer.NewOnCallMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumer.WatchBacklog(ctx, p.JS, p.Config.Topology, m, 10*time.Millisecond, zaptest.NewLogger(t))
	}()
	t.Cleanup(func() { cancel(); <-done })

	published := time.Now()
	p.Publish(actions.Send{ID: "ok-1", ChatID: "c1", Content: "hi"})
	p.Publish(actions.Send{ID: "dead-1", ChatID: "missing:1", Content: "x"})
	// No worker yet: both commands wait, and the gauge says since when.
	workertest.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.OldestCommandAge) > 0 },
		"oldest command age stayed 0 with two commands waiting")
	if age, most := testutil.ToFloat64(m.OldestCommandAge), time.Since(published).Seconds(); age > most {
		t.Errorf("oldest command age %.3fs, but the first command was published %.3fs ago", age, most)
	}
	if got := testutil.ToFloat64(m.DeadLettersStored); got != 0 {
		t.Errorf("dead letters stored = %v before any, want 0", got)
	}

	p.Start(p.Executor)
	p.Settled()
	workertest.Eventually(t, 10*time.Second, func() bool {
		return testutil.ToFloat64(m.OldestCommandAge) == 0 && testutil.ToFloat64(m.DeadLettersStored) == 1
	}, "after the worker: want oldest age 0 and 1 dead letter stored")
}

func TestOnCallMetricsNilIsSafe(t *testing.T) {
	var m *consumer.OnCallMetrics
	m.ObserveCommandLatency("send", consumer.OutcomeResult, time.Second)
	m.SetProjectPaused("GSN-1", true)
	m.ObserveProjectRateLimitWait("GSN-1", time.Second)
	consumer.WatchBacklog(t.Context(), nil, consumer.Topology{}, nil, time.Second, nil)
}

// TestCommandLatency: every stored result and dead letter records the time
// since its command was published, by type and outcome, and never more than
// that time.
func TestCommandLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := consumer.NewOnCallMetrics(reg)
	published := time.Now()
	p := newPipeline(t, workertest.WithConfig(func(c *consumer.Config) { c.Latency = m }))
	p.Publish(actions.Send{ID: "ok-1", ChatID: "c1", Content: "hi"})
	p.Publish(actions.Send{ID: "dead-1", ChatID: "missing:1", Content: "x"})
	p.Results(1)
	p.DeadLetters(1)
	p.Settled()
	most := time.Since(published).Seconds()

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "chatworker_command_latency_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			h := s.GetHistogram()
			got[labels["type"]+"/"+labels["outcome"]] += h.GetSampleCount()
			if sum := h.GetSampleSum(); sum <= 0 || sum > most {
				t.Errorf("%v: latency sum %.4fs, want above 0 and at most %.4fs", labels, sum, most)
			}
		}
	}
	want := map[string]uint64{"send/" + consumer.OutcomeResult: 1, "send/" + consumer.OutcomeDeadLetter: 1}
	if len(got) != len(want) || got["send/"+consumer.OutcomeResult] != 1 || got["send/"+consumer.OutcomeDeadLetter] != 1 {
		t.Errorf("latency samples %v, want %v", got, want)
	}
}
