package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
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
	client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
	if err != nil {
		t.Fatal(err)
	}
	keys := &keySet{def: chat.Credentials{APIKey: "ka", SiteToken: "sa"}, projects: map[string]chat.Credentials{}}
	exec := &execute.Executor{Client: client, SiteToken: "sa", Keys: keys}
	cfg := p.Config
	cfg.Projects = exec
	p.startWorker(exec, cfg)

	publish := func(project, id string) {
		body, err := json.Marshal(map[string]string{"id": id, "type": "note", "chat_id": id, "content": "x"})
		if err != nil {
			t.Fatal(err)
		}
		p.PublishRaw(contract.Subjects{}.For(project).Command(contract.TypeNote, id), id, body)
	}
	for i := range 3 {
		publish("ghost", fmt.Sprint("g", i))
	}
	publish(contract.DefaultProject, "served")
	var got string
	workertest.Eventually(t, 20*time.Second, func() bool {
		got = fmt.Sprint(testutil.ToFloat64(m.UnservedCommands.WithLabelValues("ghost")), " ", len(p.Sim.Effects()))
		return got == "3 1"
	}, "unserved ghost commands and effects: %q, want \"3 1\"", &got)
	if n := testutil.CollectAndCount(m.UnservedCommands); n != 1 {
		t.Errorf("%d unserved_commands series, want ghost's alone", n)
	}

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
