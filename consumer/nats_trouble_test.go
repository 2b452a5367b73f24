package consumer_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/internal/natstest"
)

// TestNATSRestartMidRunLosesNothing stops and restarts the NATS server
// while commands flow: every command still ends in exactly one result and
// one effect.
func TestNATSRestartMidRunLosesNothing(t *testing.T) {
	// Acknowledgements sent while the server is down are lost: those
	// commands come back after AckWait, so keep it short here.
	p := newBarePipeline(t)
	p.Config.Topology.AckWait = 2 * time.Second
	p.Start(p.Executor)
	const n = 300
	publish := func(i int) {
		cmd := actions.Send{ID: fmt.Sprint("cmd-", i), ChatID: fmt.Sprint("chat-", i%10), Content: fmt.Sprint(i)}
		deadline := time.Now().Add(time.Minute)
		for {
			// Publishing retries like an app would: the same id, so the
			// stream drops a copy that did get stored (ErrAlreadyPublished).
			if _, err := actions.Publish(t.Context(), p.JS, cmd, actions.Subjects{}); err == nil || errors.Is(err, actions.ErrAlreadyPublished) {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("publishing %s: %v", cmd.ID, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range n / 2 {
		publish(i)
	}
	p.Server = natstest.RestartServer(t, p.Server)
	for i := n / 2; i < n; i++ {
		publish(i)
	}
	results := p.Results(n)
	p.Settled()
	ids := map[string]int{}
	for _, r := range results {
		ids[r.ID]++
	}
	if len(ids) != n {
		t.Errorf("%d distinct results for %d commands", len(ids), n)
	}
	for key, c := range p.EffectsByKey() {
		if c != 1 {
			t.Errorf("command %s took effect %d times", key, c)
		}
	}
	if got := len(p.EffectsByKey()); got != n {
		t.Errorf("%d commands took effect, want %d", got, n)
	}
}
