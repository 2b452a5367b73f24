package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
)

// A worker stopped (SIGSTOP) past AckWait and the lease while its first
// deliveries call the API without a claim: the other worker takes their
// redeliveries (and the commands queued behind them) and finishes them;
// when the stopped one resumes, its outcomes find the records taken and it
// stores no result of its own. Every command ends in one result and one
// effect, in its chat's order.
func TestStoppedWorkerPastAckWait(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{HonourIdempotencyKey: true, Faults: chatsim.Faults{Latency: 150 * time.Millisecond}, Seed: 7})
	// Each worker has its own address of the one simulator, so the test
	// can stop the one worker while a call of its own is in flight.
	var inFlight atomic.Int64
	hsStopped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(hsStopped.Close)
	hsOther := httptest.NewServer(sim)
	t.Cleanup(hsOther.Close)
	env := []string{"GOSQUARED_API_KEY=e2e-key", "GOSQUARED_SITE_TOKEN=GSN-E2E-S"}
	args := func(api string) []string {
		return []string{
			"--nats-url", srv.ClientURL(), "--chat-api-url", api + "/chat/v1", "--http-addr", "",
			"--concurrency", "16", "--ack-wait", "2s", "--idempotency-lease", "3s", "--shutdown-grace", "5s",
			"--log-level", "warn", "--log-format", "json", "--claimless-first-delivery",
		}
	}
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	stopped, other := startWorker(t, env, args(hsStopped.URL)...), startWorker(t, env, args(hsOther.URL)...)

	const commands, chats = 600, 20
	perChat := map[string]int{}
	for i := range commands {
		chatID := fmt.Sprintf("visitor-%d", i%chats)
		if _, err := actions.Publish(t.Context(), js, contract.Send{ChatID: chatID, Content: strconv.Itoa(perChat[chatID])}, contract.Subjects{}); err != nil {
			t.Fatal(err)
		}
		perChat[chatID]++
	}
	// Stop one worker twice while calls are in flight (once calls flow, and
	// again once many more were made), each time past AckWait (2 s) and
	// the lease (3 s).
	for _, calls := range []int64{30, 150} {
		deadline := time.Now().Add(time.Minute)
		for sim.Stats().Requests < calls || inFlight.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after a minute: %d API calls (want %d), %d of the worker to stop in flight", sim.Stats().Requests, calls, inFlight.Load())
			}
			time.Sleep(time.Millisecond)
		}
		if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(2 * time.Minute)
	for count(t, js, "CHAT_RESULTS")+count(t, js, "CHAT_DLQ") < commands {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: %d results, %d dead letters for %d commands", count(t, js, "CHAT_RESULTS"), count(t, js, "CHAT_DLQ"), commands)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both workers drain: whatever the stopped one still held is done.
	for _, w := range []*proc{stopped, other} {
		if code := w.stop(t); code != 0 {
			t.Errorf("worker exited %d after SIGTERM, want 0", code)
		}
	}

	results := map[string]int{}
	for _, data := range readAll(t, js, "CHAT_RESULTS") {
		var r contract.Result
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		results[r.ID]++
	}
	for id, n := range results {
		if n != 1 {
			t.Errorf("command %s has %d results", id, n)
		}
	}
	if len(results) != commands {
		t.Errorf("%d commands with a result, want %d", len(results), commands)
	}
	if n := count(t, js, "CHAT_DLQ"); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	if n := count(t, js, "CHAT_COMMANDS"); n != 0 {
		t.Errorf("%d commands left in the stream", n)
	}
	seen, next := map[string]bool{}, map[string]int{}
	for _, e := range sim.Effects() {
		if seen[e.IdempotencyKey] {
			t.Errorf("command %s took effect twice", e.IdempotencyKey)
			continue
		}
		seen[e.IdempotencyKey] = true
		if e.Content != strconv.Itoa(next[e.ChatID]) {
			t.Errorf("chat %s: effect %q when %d was next", e.ChatID, e.Content, next[e.ChatID])
		}
		next[e.ChatID]++
	}
	if len(seen) != commands {
		t.Errorf("%d distinct effects for %d commands", len(seen), commands)
	}
	st := sim.Stats()
	// A call repeated with its key is a delivery that took over from the
	// stopped worker mid-call: the case under test happened.
	if st.IdempotentReplays == 0 {
		t.Errorf("no call repeated with its Idempotency-Key: the stops never caught a call in flight")
	}
	t.Logf("%d commands: %d API calls, %d answered from the Idempotency-Key", commands, st.Requests, st.IdempotentReplays)
}
