package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// TestUnservedCommandsAreCounted: a v2 command for a project no worker is
// configured for waits in the stream, and unserved_commands counts it by
// project, while the served projects' commands are done and not counted;
// once a worker serves the project, its commands run and the series goes.
func TestUnservedCommandsAreCounted(t *testing.T) {
	p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kg": {"sg"}}))
	m := consumer.NewOnCallMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(t.Context())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		consumer.WatchBacklog(ctx, p.JS, p.Config.Topology, m, 20*time.Millisecond, zaptest.NewLogger(t))
	}()
	t.Cleanup(func() { cancel(); <-watched })
	keys, publish := startProjectsWorker(t, p)
	for i := range 3 {
		publish("ghost", fmt.Sprint("g", i))
	}
	publish(contract.DefaultProject, "served")
	var got string
	// A served project's loop between two pulls can look unserved for one
	// look at the stream (the alert waits 10 minutes): the series settle.
	workertest.Eventually(t, 20*time.Second, func() bool {
		got = fmt.Sprint(testutil.ToFloat64(m.UnservedCommands.WithLabelValues("ghost")), " ", len(p.Sim.Effects()), " ", testutil.CollectAndCount(m.UnservedCommands))
		return got == "3 1 1"
	}, "unserved ghost commands, effects, and series (ghost's alone): %q, want \"3 1 1\"", &got)

	keys.mu.Lock()
	keys.projects["ghost"] = chat.Credentials{APIKey: "kg", SiteToken: "sg"}
	keys.mu.Unlock()
	workertest.Eventually(t, 20*time.Second, func() bool {
		got = fmt.Sprint(testutil.CollectAndCount(m.UnservedCommands), " ", len(p.Sim.Effects()))
		return got == "0 4"
	}, "unserved series and effects once served: %q, want \"0 4\"", &got)
	if n := p.Count("CHAT_DLQ"); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}
