package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// scenario is one run of workers being killed and added while commands flow.
type scenario struct {
	honourKey bool           // the simulator honours Idempotency-Key
	faults    chatsim.Faults // injected API failures
	commands  int
	chats     int
	kills     int // SIGKILLs, each followed by a new worker
	// claimless runs first deliveries without a claim
	// (--claimless-first-delivery); otherwise every delivery claims.
	claimless bool
}

type outcome struct {
	results, deadLetters, effects, duplicateEffects, outOfOrder int
	doubledRecords                                              []string
}

func TestKilledWorkersLoseNothingAndDoubleNothing(t *testing.T) {
	o := runScenario(t, scenario{
		honourKey: true,
		faults:    chatsim.Faults{ErrorRate: 0.1, DropRate: 0.05, LatencyJitter: 3 * time.Millisecond},
		commands:  1500, chats: 60, kills: 6,
	})
	if o.duplicateEffects != 0 {
		t.Errorf("%d duplicate effects with an API that honours Idempotency-Key, want 0", o.duplicateEffects)
	}
	if o.outOfOrder != 0 {
		t.Errorf("%d effects out of their chat's publish order", o.outOfOrder)
	}
}

// Kills landing mid-call: every call takes 10-30 ms, so a killed worker
// is nearly always in the middle of first deliveries that run without a
// claim (--claimless-first-delivery), with more of their chats queued
// behind them. Their redeliveries claim; the Idempotency-Key answers the calls a
// killed worker may have made; nothing is lost, doubled or reordered.
func TestKilledWorkersMidClaimlessFirstDeliveries(t *testing.T) {
	o := runScenario(t, scenario{
		honourKey: true,
		faults:    chatsim.Faults{Latency: 10 * time.Millisecond, LatencyJitter: 20 * time.Millisecond},
		commands:  1000, chats: 40, kills: 6, claimless: true,
	})
	if o.duplicateEffects != 0 {
		t.Errorf("%d duplicate effects with an API that honours Idempotency-Key, want 0", o.duplicateEffects)
	}
	if o.outOfOrder != 0 {
		t.Errorf("%d effects out of their chat's publish order", o.outOfOrder)
	}
}

// Without the API's help, the crash window between the API applying an
// effect and the worker recording it can double an effect; everything else
// holds. The count is reported, not asserted (README: Idempotency).
func TestKilledWorkersWithoutAPIIdempotency(t *testing.T) {
	o := runScenario(t, scenario{
		honourKey: false,
		faults:    chatsim.Faults{ErrorRate: 0.1, LatencyJitter: 3 * time.Millisecond},
		commands:  1500, chats: 60, kills: 6,
	})
	t.Logf("without Idempotency-Key support: %d duplicate effects in %d commands over %d SIGKILLs", o.duplicateEffects, o.results, 6)
}

func runScenario(t *testing.T, sc scenario) outcome {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{HonourIdempotencyKey: sc.honourKey, Faults: sc.faults, Seed: 42})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)

	env := []string{"GOSQUARED_API_KEY=e2e-key", "GOSQUARED_SITE_TOKEN=GSN-E2E-S"}
	args := []string{
		"--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", "",
		"--concurrency", "16", "--ack-wait", "2s", "--idempotency-lease", "3s", "--shutdown-grace", "5s",
		"--retry-initial-interval", "5ms", "--retry-max-interval", "200ms", "--retry-in-process-max", "50ms",
		"--retry-max-attempts", "1000", "--retry-max-elapsed", "10m",
		"--log-level", "warn", "--log-format", "json",
	}
	if sc.claimless {
		args = append(args, "--claimless-first-delivery")
	}
	// Provision before anyone publishes, as a deployment's Job would.
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	var workers []*proc
	for range 3 {
		workers = append(workers, startWorker(t, env, args...))
	}

	// Publish in the background, a few hundred per second, recording each
	// chat's publish order in the content.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	published := make(chan error, 1)
	go func() {
		var err error
		defer func() { published <- err }()
		perChat := map[string]int{}
		for i := range sc.commands {
			chatID := fmt.Sprintf("visitor-%d", rand.IntN(sc.chats))
			if _, err = actions.Publish(ctx, js, contract.Send{ChatID: chatID, Content: strconv.Itoa(perChat[chatID])}, contract.Subjects{}); err != nil {
				return
			}
			perChat[chatID]++
			if i%50 == 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()

	// Kill a worker and start another, again and again; scale up by one
	// halfway and drain one gracefully at the end.
	for k := range sc.kills {
		time.Sleep(time.Duration(200+rand.IntN(300)) * time.Millisecond)
		i := rand.IntN(len(workers))
		workers[i].kill()
		workers[i] = startWorker(t, env, args...)
		if k == sc.kills/2 {
			workers = append(workers, startWorker(t, env, args...))
		}
	}
	if err := <-published; err != nil {
		t.Fatalf("publishing: %v", err)
	}
	if code := workers[0].stop(t); code != 0 {
		t.Errorf("worker exited %d after SIGTERM, want 0", code)
	}

	var o outcome
	deadline := time.Now().Add(2 * time.Minute)
	for {
		o.results, o.deadLetters = count(t, js, "CHAT_RESULTS"), count(t, js, "CHAT_DLQ")
		if o.results+o.deadLetters >= sc.commands {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: %d results and %d dead letters for %d commands", o.results, o.deadLetters, sc.commands)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every command: exactly one record, a result (all could succeed).
	records := map[string]int{}
	for _, data := range readAll(t, js, "CHAT_RESULTS") {
		var r contract.Result
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		records[r.ID]++
	}
	for id, n := range records {
		if n > 1 {
			o.doubledRecords = append(o.doubledRecords, id)
		}
	}
	if len(records) != sc.commands || len(o.doubledRecords) > 0 || o.deadLetters > 0 {
		t.Errorf("%d commands: %d distinct results, %d doubled, %d dead letters", sc.commands, len(records), len(o.doubledRecords), o.deadLetters)
	}

	// Effects: once per command (when the API honours the key), in each
	// chat's publish order (first occurrences).
	seen := map[string]bool{}
	next := map[string]int{}
	for _, e := range sim.Effects() {
		o.effects++
		if seen[e.IdempotencyKey] {
			o.duplicateEffects++
			continue
		}
		seen[e.IdempotencyKey] = true
		if e.Content != strconv.Itoa(next[e.ChatID]) {
			o.outOfOrder++
			t.Logf("chat %s: effect %q when %d was next", e.ChatID, e.Content, next[e.ChatID])
		}
		next[e.ChatID]++
	}
	if len(seen) != sc.commands {
		t.Errorf("%d distinct effects for %d commands", len(seen), sc.commands)
	}
	st := sim.Stats()
	t.Logf("%d commands, %d SIGKILLs: %d results, %d dead letters, %d effects (%d duplicate), %d API calls (%d injected errors, %d dropped)",
		sc.commands, sc.kills, o.results, o.deadLetters, o.effects, o.duplicateEffects, st.Requests, st.Errors, st.Dropped)
	return o
}

func count(t *testing.T, js jetstream.JetStream, stream string) int {
	t.Helper()
	_, state := streamState(t, js, stream)
	return int(state.Msgs)
}

func readAll(t *testing.T, js jetstream.JetStream, stream string) [][]byte {
	t.Helper()
	s, state := streamState(t, js, stream)
	var out [][]byte
	for seq := state.FirstSeq; seq <= state.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Data)
	}
	return out
}

func streamState(t *testing.T, js jetstream.JetStream, stream string) (jetstream.Stream, jetstream.StreamState) {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, info.State
}
