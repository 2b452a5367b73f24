package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go/jetstream"
)

// The replicas serving one project spend one rate budget together: from 1
// to 4 of them, joining, starting together and killed, they use at least
// 90 % of it and fewer than 1 % of their calls are refused with 429.
//
// The budget is 25 calls a second with a bucket of two seconds (the API's
// holds a minute, which forgives far more), a backlog of sends kept waiting.
// Each count of replicas is measured over six seconds once the replicas see
// each other; the 429s are counted over the whole run, joins and the kill
// included.
func TestReplicasShareOneBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("about 50 s of worker processes")
	}
	const (
		perSec = 25.0
		bucket = 2 * time.Second
		span   = 6 * time.Second
	)
	r := newBudgetRig(t, perSec, bucket)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	fed := r.feed(ctx, 400)
	start := r.sim.Stats()

	var windows []window
	measure := func(n int) {
		t.Helper()
		r.waitLive(n)
		time.Sleep(time.Second) // the newest replica learns the budget
		w := r.measure(n, span)
		r.report(w)
		windows = append(windows, w)
	}
	r.start()
	measure(1)
	r.start() // one joins
	measure(2)
	r.start() // two start together
	r.start()
	measure(4)

	// A replica killed: its record stops being written, and the others take
	// its share once it is older than three heartbeats.
	r.workers[0].kill()
	bins, gone := r.afterKill(5, 3)
	t.Logf("killed a replica: its record was gone within %d s; calls a second in each second after the kill: %.1f", gone, bins)
	if gone == 0 || gone > 4 {
		t.Errorf("the dead replica's record still counted 4 s after the kill (3 s of silence is a replica gone): the others kept a quarter of the budget each")
	}
	r.waitLive(3)
	w := r.measure(3, span)
	r.report(w)
	windows = append(windows, w)

	cancel()
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	end := r.sim.Stats()
	refused, requests := end.RateLimited-start.RateLimited, end.Requests-start.Requests
	t.Logf("whole run: %d of %d calls refused (%.2f %%)", refused, requests, 100*float64(refused)/float64(requests))
	if float64(refused) >= 0.01*float64(requests) {
		t.Errorf("%d of %d calls refused with 429, want fewer than 1 %%", refused, requests)
	}
	for _, w := range windows {
		if u := w.callsPerSec() / perSec; u < 0.9 {
			t.Errorf("%d replicas used %.0f %% of the budget, want at least 90 %%", w.replicas, 100*u)
		}
	}
}

// budgetRig is one rate-limited project served by worker processes that
// come and go, with a backlog kept topped up.
type budgetRig struct {
	t       *testing.T
	sim     *chatsim.Server
	js      jetstream.JetStream
	env     []string
	args    []string
	perSec  float64
	workers []*proc
}

// newBudgetRig serves perSec calls a second to one API key, from a bucket
// holding bucket's worth of them.
func newBudgetRig(t *testing.T, perSec float64, bucket time.Duration) *budgetRig {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{RatePerMinute: int(perSec * bucket.Seconds()), RateWindow: bucket, Seed: 7})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{AckWait: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return &budgetRig{
		t: t, sim: sim, js: js, perSec: perSec,
		env: []string{"GOSQUARED_API_KEY=budget-key", "GOSQUARED_SITE_TOKEN=GSN-BUDGET-S"},
		args: []string{
			"--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", "",
			"--concurrency", "16", "--ack-wait", "5s", "--shutdown-grace", "5s",
			"--retry-initial-interval", "5ms", "--retry-max-interval", "200ms", "--retry-in-process-max", "50ms",
			"--retry-max-attempts", "1000", "--retry-max-elapsed", "10m",
			"--log-level", "warn", "--log-format", "json",
		},
	}
}

func (r *budgetRig) start() {
	r.workers = append(r.workers, startWorker(r.t, r.env, r.args...))
}

// waitLive waits until the replicas' records number n.
func (r *budgetRig) waitLive(n int) {
	r.t.Helper()
	var got int
	workertest.Eventually(r.t, 30*time.Second, func() bool {
		ms, err := fleet.List(r.t.Context(), r.js, "")
		got = len(ms)
		return err == nil && got == n
	}, "%d live replicas, want %d", &got, n)
}

// feed keeps about backlog commands waiting, over 500 chats, until ctx
// ends; it then reports the first error.
func (r *budgetRig) feed(ctx context.Context, backlog int) <-chan error {
	done := make(chan error, 1)
	go func() {
		n := 0
		for {
			err := r.topUp(ctx, backlog, &n)
			if ctx.Err() != nil {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return done
}

func (r *budgetRig) topUp(ctx context.Context, backlog int, n *int) error {
	s, err := r.js.Stream(ctx, "CHAT_COMMANDS")
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	for i := int(info.State.Msgs); i < backlog; i++ {
		if _, err := actions.Publish(ctx, r.js, contract.Send{ChatID: fmt.Sprintf("visitor-%d", *n%500), Content: "x"}, contract.Subjects{}); err != nil {
			return err
		}
		*n++
	}
	return nil
}

// window is what the simulator answered over a stretch of time.
type window struct {
	replicas       int
	took           time.Duration
	answered, r429 int64
}

func (w window) callsPerSec() float64 { return float64(w.answered) / w.took.Seconds() }

func (r *budgetRig) measure(replicas int, d time.Duration) window {
	a, from := r.sim.Stats(), time.Now()
	time.Sleep(d)
	b := r.sim.Stats()
	w := window{replicas: replicas, took: time.Since(from), r429: b.RateLimited - a.RateLimited}
	w.answered = b.Requests - a.Requests - w.r429
	return w
}

// afterKill counts the calls answered in each of the next n seconds, and
// says after which of them the replicas' records first numbered live.
func (r *budgetRig) afterKill(n, live int) (bins []float64, gone int) {
	for i := range n {
		bins = append(bins, r.measure(0, time.Second).callsPerSec())
		if ms, err := fleet.List(r.t.Context(), r.js, ""); gone == 0 && err == nil && len(ms) == live {
			gone = i + 1
		}
	}
	return bins, gone
}

func (r *budgetRig) report(w window) {
	r.t.Helper()
	total := w.answered + w.r429
	r.t.Logf("%d replicas: %.1f calls/s = %.0f %% of %.1f; %d of %d refused (%.2f %%)",
		w.replicas, w.callsPerSec(), 100*w.callsPerSec()/r.perSec, r.perSec, w.r429, total, 100*float64(w.r429)/float64(max(total, 1)))
}
