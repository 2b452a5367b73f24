package consumer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
)

// TestBurstStaysUnderTheAPIRateLimit publishes a burst far above the API's
// budget (scaled down in time: 200 units per second instead of 750 per
// minute), all waiting before the worker starts. The client-side limiter learns the budget from the first
// responses, so the API answers 429 to under 1% of the calls, and every
// command still succeeds.
func TestBurstStaysUnderTheAPIRateLimit(t *testing.T) {
	p := newBarePipeline(t, workertest.WithRateLimit(200, time.Second))
	p.Config.Concurrency = 64
	const n = 800
	for i := range n {
		p.Publish(actions.Note{ChatID: fmt.Sprint("chat-", i%200), Content: "x"})
	}
	p.Start(p.Executor)
	p.Results(n)
	p.Settled()
	st := p.Sim.Stats()
	frac := float64(st.RateLimited) / float64(st.Requests)
	t.Logf("%d calls for %d commands, %d answered 429 (%.2f%%)", st.Requests, n, st.RateLimited, 100*frac)
	if frac >= 0.01 {
		t.Errorf("%.2f%% of calls were rate limited, want under 1%%", 100*frac)
	}
}
