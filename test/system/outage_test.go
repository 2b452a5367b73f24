package system

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/test/containers"
)

// outageRetries is a retry budget far shorter than the outage below: three
// calls within a fraction of a second. Without the project's outage
// detection every command the outage meets is dead-lettered as exhausted.
var outageRetries = map[string]string{
	"WORKER_RETRY_MAX_ATTEMPTS":     "3",
	"WORKER_RETRY_INITIAL_INTERVAL": "10ms",
	"WORKER_RETRY_MAX_INTERVAL":     "100ms",
}

// TestProviderOutage: the Chat API fails every call (500/503, the API's own
// error, before any effect) for about 15 s while commands are published at
// up to 50 a second, on the 3-node cluster with three workers whose retry
// budget (outageRetries) spans well under a second. The workers must see an
// outage of the project rather than failing commands: pause the project (in
// the projects bucket), stop calling, probe until the API answers, resume,
// and run every command once, in each chat's order, with no dead letter.
//
// With both ways to an outage pause patched out of the consumer (the
// outage rule and the check before an exhausted dead letter), 774 of the
// 1000 commands were dead-lettered as exhausted. --outage-commands set to a
// million alone is not enough to make it fail: that check still pauses the
// project.
func TestProviderOutage(t *testing.T) {
	containers.RequireDocker(t)
	began := time.Now()
	h := newHarness(t, outageRetries)
	t.Logf("setup (3 NATS nodes, sim, 3 workers): %v", time.Since(began).Round(time.Millisecond))
	r := h.run(t, scenario{name: "provider-outage", commands: 1000, chats: 50, pace: 400 * time.Millisecond, fault: providerOutage(15 * time.Second)})
	t.Logf("what the test did and saw:\n%s", table([]row{r}))
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// providerOutage makes the simulator fail every call for hold while
// publishing goes on; it checks that the project is paused for an outage
// during it and active again after it.
func providerOutage(hold time.Duration) func(t *testing.T, h *harness, f *flow) string {
	return func(t *testing.T, h *harness, f *flow) string {
		states, err := project.Bind(t.Context(), h.js, "")
		if err != nil {
			t.Fatalf("the projects bucket: %v", err)
		}
		h.simPost(t, "/_sim/faults", `{"error_rate":1,"latency_jitter":"3ms"}`)
		down := time.Now()
		// Not waitFor: without a pause the batch goes on, so that the
		// failure also counts the dead letters it left.
		var paused []string
		for deadline := down.Add(30 * time.Second); len(paused) == 0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			if paused, err = outagePaused(t, states); err != nil {
				t.Logf("%v", err)
			}
		}
		if len(paused) == 0 {
			t.Errorf("no project paused for an outage %v into it", time.Since(down).Round(time.Millisecond))
		}
		pausedAfter := time.Since(down)
		// Pacing, not an assertion: hold the outage well past the retry
		// budget while commands keep coming.
		if d := hold - time.Since(down); d > 0 {
			time.Sleep(d)
		}
		if still, err := outagePaused(t, states); err == nil && len(paused) > 0 && len(still) == 0 {
			t.Errorf("the project was resumed while the API still failed every call")
		}
		h.simPost(t, "/_sim/faults", `{"latency_jitter":"3ms"}`)
		up := time.Now()
		// The probe backs off to 16 s, then 32 s, between its checks.
		waitFor(t, time.Minute, func() error {
			if still, err := outagePaused(t, states); err != nil || len(still) > 0 {
				return cmp.Or(err, fmt.Errorf("%s still paused for an outage %v after the API recovered", strings.Join(still, ", "), time.Since(up).Round(time.Millisecond)))
			}
			return nil
		})
		if len(paused) == 0 {
			return fmt.Sprintf("every call 5xx for %v: no project paused", up.Sub(down).Round(100*time.Millisecond))
		}
		return fmt.Sprintf("every call 5xx for %v: %s paused for an outage after %v, resumed %v after the API recovered",
			up.Sub(down).Round(100*time.Millisecond), strings.Join(paused, ", "), pausedAfter.Round(100*time.Millisecond), time.Since(up).Round(100*time.Millisecond))
	}
}

// outagePaused lists the projects the workers hold paused for an outage.
func outagePaused(t *testing.T, states *project.Store) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	list, err := states.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("projects bucket: %w", err)
	}
	var out []string
	for _, st := range list {
		if st.Health != nil && st.Health.Cause == project.CauseOutage {
			out = append(out, st.Project)
		}
	}
	slices.Sort(out)
	return out, nil
}
