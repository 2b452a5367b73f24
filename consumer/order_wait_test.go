package consumer_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/prometheus/client_golang/prometheus"
)

// byWorker notes which worker executed each command.
type byWorker struct {
	next consumer.Executor
	name string
	mu   *sync.Mutex
	ran  map[string]string // content -> worker
}

func (b *byWorker) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	b.mu.Lock()
	b.ran[cmd.Content] = b.name
	b.mu.Unlock()
	return b.next.Execute(ctx, cmd)
}

// TestOrderWaitsInPlaceAcrossWorkers: two workers pull from one consumer
// and one chat's commands are spread over both. A worker holding the chat's
// next command while the one before runs on the other waits for it in
// place and runs it once it has left the stream: no command is handed back
// for order's sake, and the effects are in publish order, each once. (Handed back, each would come back after a delay, often to the
// other worker, and bounce again.)
func TestOrderWaitsInPlaceAcrossWorkers(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{Latency: 20 * time.Millisecond}))
	var mu sync.Mutex
	ran := map[string]string{}
	var regs []*prometheus.Registry
	for _, name := range []string{"a", "b"} {
		reg := prometheus.NewRegistry()
		regs = append(regs, reg)
		p.Config.Metrics = consumer.NewMetrics(reg)
		p.Start(&byWorker{next: p.Executor, name: name, mu: &mu, ran: ran})
	}
	// Both workers have a pull request waiting before anything is
	// published, so the server hands the commands to both in turn.
	cons, err := p.JS.Consumer(t.Context(), "CHAT_COMMANDS", "chat-worker")
	if err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 10*time.Second, func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumWaiting >= 2
	}, "two workers pulling")
	const n = 20
	for i := range n {
		p.Publish(actions.Send{ChatID: "x", Content: strconv.Itoa(i)})
	}
	results := p.Results(n)
	p.Settled()

	for i, e := range p.Sim.Effects() {
		if e.Content != strconv.Itoa(i) {
			t.Fatalf("effect %d is %q: the chat's commands ran out of order", i, e.Content)
		}
	}
	if got := len(p.Sim.Effects()); got != n {
		t.Errorf("%d effects, want %d", got, n)
	}
	counts := map[string]int{}
	for _, w := range ran {
		counts[w]++
	}
	if counts["a"] == 0 || counts["b"] == 0 {
		t.Fatalf("the chat's commands ran on one worker only (%v): the test needs them spread", counts)
	}
	for i, reg := range regs {
		if w := counter(t, reg, "chatworker_order_waits_total", ""); w != 0 {
			t.Errorf("worker %d handed %v commands back to wait for their turn, want 0 (they wait in place)", i, w)
		}
	}
	var rechecks float64
	for _, reg := range regs {
		rechecks += counter(t, reg, "chatworker_order_checks_total", "rechecked")
	}
	if rechecks == 0 {
		t.Errorf("no command waited in place, though the chat's commands ran on both workers")
	}
	for _, r := range results {
		if r.Status != contract.StatusSucceeded {
			t.Errorf("result %+v", r)
		}
	}
	t.Logf("ran on: %v; rechecks: %v", counts, rechecks)
}

// counter reads a counter from reg: the one with label check=check, or the
// unlabelled one when check is "".
func counter(t *testing.T, reg *prometheus.Registry, name, check string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if check == "" && len(m.GetLabel()) == 0 {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "check" && l.GetValue() == check {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	if check == "" {
		t.Fatalf("no metric %s", name)
	}
	return 0
}
