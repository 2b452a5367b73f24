package consumer_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPerChatOrderAcrossWorkersWithRetries runs three workers on one
// consumer while the simulator fails and drops calls, including retries
// long enough to hand commands back to the stream. Every chat's effects
// must still be in publish order, each exactly once.
func TestPerChatOrderAcrossWorkersWithRetries(t *testing.T) {
	p := newBarePipeline(t,
		workertest.WithFaults(chatsim.Faults{ErrorRate: 0.2, DropRate: 0.05, LatencyJitter: 2 * time.Millisecond}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 50, InitialInterval: 2 * time.Millisecond, MaxInterval: 30 * time.Millisecond, InProcessMax: 10 * time.Millisecond}))
	for range 3 {
		p.Start(p.Executor)
	}
	const chats, perChat = 12, 15
	for i := range perChat {
		for c := range chats {
			p.Publish(actions.Send{ChatID: fmt.Sprintf("chat-%d", c), Content: strconv.Itoa(i)})
		}
	}
	p.Results(chats * perChat)
	p.Settled()

	next := map[string]int{}
	seen := map[string]bool{}
	for _, e := range p.Sim.Effects() {
		if seen[e.IdempotencyKey] {
			t.Errorf("command %s took effect twice", e.IdempotencyKey)
		}
		seen[e.IdempotencyKey] = true
		if want := strconv.Itoa(next[e.ChatID]); e.Content != want {
			t.Errorf("chat %s: effect %q arrived when %q was next", e.ChatID, e.Content, want)
		}
		next[e.ChatID]++
	}
	for c := range chats {
		if got := next[fmt.Sprintf("chat-%d", c)]; got != perChat {
			t.Errorf("chat-%d: %d effects, want %d", c, got, perChat)
		}
	}
}

// TestDeadLetterReleasesItsChat: a command that fails for good must not
// block the commands of its chat behind it.
func TestDeadLetterReleasesItsChat(t *testing.T) {
	p := newPipeline(t)
	p.PublishRaw("chat.commands.send.abc", "bad", []byte(`{"id":"bad","type":"send","chat_id":"abc"}`))
	p.Publish(actions.Send{ChatID: "abc", Content: "after the bad one"})
	p.DeadLetters(1)
	r := p.Results(1)[0]
	if r.Status != contract.StatusSucceeded {
		t.Errorf("result %+v", r)
	}
	p.Settled()
}

// TestRetryHoldsBackItsChatOnly: while one chat's first command waits for
// its retry, the chat's next command waits too, and other chats proceed.
func TestRetryHoldsBackItsChatOnly(t *testing.T) {
	p := newBarePipeline(t, workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 3, InitialInterval: 300 * time.Millisecond, MaxInterval: 300 * time.Millisecond, InProcessMax: time.Millisecond}))
	p.Start(&failFirst{next: p.Executor, chat: "slow"})
	first := p.Publish(actions.Send{ChatID: "slow", Content: "1"})
	second := p.Publish(actions.Send{ChatID: "slow", Content: "2"})
	other := p.Publish(actions.Send{ChatID: "fast", Content: "x"})
	results := p.Results(3)
	var order []string
	for _, r := range results {
		order = append(order, r.ID)
	}
	got := strings.Join(order, ",")
	if want := other.ID + "," + first.ID + "," + second.ID; got != want {
		t.Errorf("results in order %s, want other, first, second (%s)", got, want)
	}
}

// TestPerChatOrderWhenWorkersJoin: a lone worker skips most order checks
// (its deliveries are unbroken, see headProof); then two more workers join
// and the server hands deliveries to the three in turn, which must void
// the lone worker's proofs. Every chat's effects must be in publish order,
// each exactly once, across the change.
func TestPerChatOrderWhenWorkersJoin(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{LatencyJitter: time.Millisecond}))
	reg := prometheus.NewRegistry()
	p.Config.Metrics = consumer.NewMetrics(reg)
	p.Start(p.Executor)
	const chats, perChat = 20, 30
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			for c := range chats {
				p.Publish(actions.Send{ChatID: fmt.Sprintf("chat-%d", c), Content: strconv.Itoa(i)})
			}
		}
	}
	publish(0, perChat/3)
	p.Results(chats * perChat / 3)
	if skipped := orderChecks(t, reg, "skipped"); skipped == 0 {
		t.Errorf("the lone worker skipped no order check")
	}
	p.Start(p.Executor)
	p.Start(p.Executor)
	publish(perChat/3, perChat)
	p.Results(chats * perChat)
	p.Settled()

	next := map[string]int{}
	for _, e := range p.Sim.Effects() {
		if want := strconv.Itoa(next[e.ChatID]); e.Content != want {
			t.Errorf("chat %s: effect %q arrived when %q was next", e.ChatID, e.Content, want)
		}
		next[e.ChatID]++
	}
	if n := len(p.Sim.Effects()); n != chats*perChat {
		t.Errorf("%d effects, want %d", n, chats*perChat)
	}
	t.Logf("order checks: %v asked, %v skipped", orderChecks(t, reg, "asked"), orderChecks(t, reg, "skipped"))
}

func orderChecks(t *testing.T, reg *prometheus.Registry, check string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "chatworker_order_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "check" && l.GetValue() == check {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
