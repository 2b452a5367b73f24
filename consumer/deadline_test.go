package consumer_test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/prometheus/client_golang/prometheus"
)

// countingExec counts the API calls it is asked to make and fails each one
// with fail when set.
type countingExec struct {
	next  consumer.Executor
	fail  error
	calls atomic.Int32
}

func (c *countingExec) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	c.calls.Add(1)
	if c.fail != nil {
		return contract.Outcome{}, c.fail
	}
	return c.next.Execute(ctx, cmd)
}

// A command past its not_after makes no API call, on its first delivery as
// on any later one, and becomes a dead letter of class expired, counted by
// type.
func TestDeadlinePassedMakesNoCall(t *testing.T) {
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name string
		cmd  actions.Commander
	}{
		{"send", actions.Send{ChatID: "late-send", Content: "Your payment failed", NotAfter: past}},
		{"note", actions.Note{ChatID: "late-note", Content: "n", NotAfter: past}},
		{"archive", actions.Archive{ChatID: "late-archive", NotAfter: past}},
	}
	p := newBarePipeline(t)
	reg := prometheus.NewRegistry()
	p.Config.Metrics = consumer.NewMetrics(reg)
	exec := &countingExec{next: p.Executor}
	p.Start(exec)
	var ids []string
	for _, tt := range tests {
		ids = append(ids, p.Publish(tt.cmd).ID)
	}
	byID := map[string]actions.DeadLetter{}
	for _, dl := range p.DeadLetters(len(tests)) {
		var c actions.Command
		if err := json.Unmarshal(dl.Command, &c); err != nil {
			t.Fatalf("dead letter command %s: %v", dl.Command, err)
		}
		byID[c.ID] = dl
	}
	p.Settled()
	if n := exec.calls.Load(); n != 0 {
		t.Errorf("%d API calls for commands past their deadline, want 0", n)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl := byID[ids[i]]
			if dl.Error.Class != contract.ClassExpired || dl.Attempts != 0 || dl.Command == nil {
				t.Errorf("dead letter: class %q, %d attempts, command %s; want expired, 0 attempts, the command", dl.Error.Class, dl.Attempts, dl.Command)
			}
			if !strings.Contains(dl.Error.Message, "not_after") {
				t.Errorf("dead letter message %q does not name the deadline", dl.Error.Message)
			}
		})
	}
	// The dead-letter counter counts expirations by type: no metric of
	// its own is needed. (Its other series exist at 0.)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "chatworker_commands_dead_lettered_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				counted[labels["class"]+"/"+labels["type"]] = v
			}
		}
	}
	if want := map[string]float64{"expired/archive": 1, "expired/note": 1, "expired/send": 1}; !maps.Equal(counted, want) {
		t.Errorf("dead letters counted %v, want %v", counted, want)
	}
	if n := len(p.Sim.Effects()); n != 0 {
		t.Errorf("the API shows %d effects, want none", n)
	}
}

// A command whose deadline is still ahead runs as any other.
func TestDeadlineAheadRuns(t *testing.T) {
	p := newPipeline(t)
	cmd := p.Publish(actions.Send{ChatID: "on-time", Content: "hi", NotAfter: time.Now().Add(time.Hour)})
	res := p.Results(1)
	if res[0].ID != cmd.ID || res[0].Status != contract.StatusSucceeded {
		t.Fatalf("result %+v, want %s succeeded", res[0], cmd.ID)
	}
}

// A retry whose wait would end past the deadline expires at once, whether
// the wait would be in the worker or across deliveries, keeping what the
// last attempt learnt (its API status).
func TestDeadlineCutsRetryShort(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration // the API's hint: the wait is at least this
	}{
		{"in-process wait", 10 * time.Second},
		{"handed back with a delay", time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBarePipeline(t, workertest.WithRetry(consumer.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond,
				MaxAttempts: 20, InProcessMax: 20 * time.Second}))
			exec := &countingExec{fail: &chat.APIError{Op: "send", StatusCode: 503, RetryAfter: tt.retryAfter}}
			p.Start(exec)
			// The deadline leaves time for the first call, not for the wait.
			cmd := p.Publish(actions.Send{ChatID: "retry-" + strings.ReplaceAll(tt.name, " ", "-"), Content: "hi",
				NotAfter: time.Now().Add(5 * time.Second)})
			dl := p.DeadLetters(1)[0]
			p.Settled()
			if n := exec.calls.Load(); n != 1 {
				t.Errorf("%d API calls, want 1: the retry should have expired", n)
			}
			if dl.Error.Class != contract.ClassExpired || dl.Attempts != 1 || dl.Error.APIStatus != 503 {
				t.Errorf("dead letter: class %q, %d attempts, api_status %d; want expired, 1, 503 (%s)", dl.Error.Class, dl.Attempts, dl.Error.APIStatus, dl.Error.Message)
			}
			if !strings.Contains(string(dl.Command), cmd.ID) {
				t.Errorf("dead letter holds %s, want command %s", dl.Command, cmd.ID)
			}
		})
	}
}

// gatedExec holds every call for chat "slow" until release is closed, and
// records the chats of the calls it makes.
type gatedExec struct {
	next    consumer.Executor
	release chan struct{}
	holding atomic.Bool
	mu      sync.Mutex
	chats   []string
}

func (g *gatedExec) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	g.mu.Lock()
	g.chats = append(g.chats, cmd.ChatID)
	g.mu.Unlock()
	if cmd.ChatID == "slow" {
		g.holding.Store(true)
		<-g.release
	}
	return g.next.Execute(ctx, cmd)
}

// A deadline that passes while the command waits for an API call slot
// still stops the call: the deadline is checked once the slot is free.
func TestDeadlinePassesWhileWaitingForASlot(t *testing.T) {
	p := newBarePipeline(t)
	p.Config.Concurrency = 1
	exec := &gatedExec{next: p.Executor, release: make(chan struct{})}
	var once sync.Once
	free := func() { once.Do(func() { close(exec.release) }) }
	p.Start(exec)
	t.Cleanup(free) // before the worker stops, should the test end early
	p.Publish(actions.Send{ChatID: "slow", Content: "takes the only slot"})
	workertest.Eventually(t, 10*time.Second, func() bool { return exec.holding.Load() }, "the slow call holds the slot")
	notAfter := time.Now().Add(time.Second)
	late := p.Publish(actions.Send{ChatID: "waiting", Content: "hi", NotAfter: notAfter})
	workertest.Eventually(t, 10*time.Second, func() bool { return time.Now().After(notAfter) }, "the deadline passes")
	free()
	dl := p.DeadLetters(1)[0]
	p.Results(1)
	p.Settled()
	if dl.Error.Class != contract.ClassExpired || dl.Attempts != 0 || !strings.Contains(string(dl.Command), late.ID) {
		t.Errorf("dead letter: class %q, %d attempts, command %s; want expired, 0 attempts, %s", dl.Error.Class, dl.Attempts, dl.Command, late.ID)
	}
	exec.mu.Lock()
	defer exec.mu.Unlock()
	if len(exec.chats) != 1 || exec.chats[0] != "slow" {
		t.Errorf("API calls for chats %q, want only \"slow\"", exec.chats)
	}
}
