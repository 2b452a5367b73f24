package system

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/test/containers"
)

// TestGuaranteesUnderFaults proves the README's guarantees where they are
// hardest: a 3-node JetStream cluster with R3 streams, three worker
// containers and the simulator, while workers are SIGKILLed, NATS nodes
// stopped, a worker cut off the network, workers drained with SIGTERM and the
// API fails. Each scenario publishes a fresh batch of commands (its own id
// and chat prefix, each chat's publish order in the content) while its fault
// happens, waits until the command stream is empty, then checks: every
// command exactly one result or dead letter, no dead letter at all (every
// command could succeed: the retry budget outlasts every fault), one effect
// per command at a simulator that honours Idempotency-Key, and every chat's
// effects in publish order. The scenarios share the cluster, the simulator
// and the workers, one after another; the last one swaps in a simulator that
// ignores Idempotency-Key and reports the duplicate effects SIGKILLs cause.
func TestGuaranteesUnderFaults(t *testing.T) {
	containers.RequireDocker(t)
	began := time.Now()
	h := newHarness(t, nil)
	t.Logf("setup (3 NATS nodes, sim, 3 workers): %v", time.Since(began).Round(time.Millisecond))

	var rows []row
	defer func() { t.Logf("what the test did and saw:\n%s", table(rows)) }()

	for _, sc := range []scenario{
		{name: "worker-sigkill", commands: 2000, chats: 100, fault: killWorkers(4)},
		{name: "nats-leader-stop", commands: 2000, chats: 100, fault: stopStreamLeader},
		{name: "idempotency-leader-stop", commands: 2000, chats: 100, fault: stopIdempotencyLeader},
		{name: "nats-rolling-restart", commands: 3000, chats: 100, fault: restartNATSNodes},
		{name: "worker-partition", commands: 2000, chats: 100, fault: partitionWorker},
		{name: "worker-rolling-sigterm", commands: 2000, chats: 100, fault: rollWorkers},
		{name: "api-503-and-drops", commands: 2000, chats: 100, fault: apiFaults},
		{name: "sigkill-no-idempotency-key", commands: 2000, chats: 100, fault: killWorkers(4), before: swapToForgetfulSim},
	} {
		quiet := false
		ok := t.Run(sc.name, func(t *testing.T) {
			if sc.before != nil {
				sc.before(t, h)
			}
			r := h.run(t, sc)
			quiet = true
			rows = append(rows, r)
		})
		if !ok && !quiet {
			// The stream may still hold this batch: the next one's checks
			// would be about both.
			break
		}
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// Short timings so that recovery takes seconds: a crashed worker's commands
// come back after WORKER_ACK_WAIT, its claims lapse after the lease.
var workerTimings = map[string]string{
	"WORKER_STREAM_REPLICAS":        "3",
	"WORKER_CONCURRENCY":            "32",
	"WORKER_ACK_WAIT":               "3s",
	"WORKER_IDEMPOTENCY_LEASE":      "5s",
	"WORKER_RETRY_INITIAL_INTERVAL": "10ms",
	"WORKER_RETRY_MAX_INTERVAL":     "500ms",
	"WORKER_RETRY_MAX_ATTEMPTS":     "1000",
	"WORKER_RETRY_MAX_ELAPSED":      "10m",
	"WORKER_SHUTDOWN_GRACE":         "5s",
	"WORKER_LOG_LEVEL":              "warn",
	"WORKER_LOG_FORMAT":             "json",
	"GOSQUARED_API_KEY":             "system-test-key",
	"GOSQUARED_SITE_TOKEN":          "GSN-000000-T",
}

// simArgs: a little latency so that calls overlap the faults.
var simArgs = []string{"--seed", "42", "--latency-jitter", "3ms"}

type harness struct {
	top     *testing.T // containers outlive the scenario that starts them
	cluster *containers.Cluster
	sim     *containers.Container
	honour  bool // the current simulator honours Idempotency-Key
	env     map[string]string
	workers []*containers.Container
	js      jetstream.JetStream
	records *records
}

// newHarness starts the cluster, the simulator and three workers with
// workerTimings, overridden by env.
func newHarness(t *testing.T, env map[string]string) *harness {
	t.Helper()
	h := &harness{top: t, cluster: containers.StartNATSCluster(t, 3), honour: true, records: newRecords()}
	h.sim = containers.StartSim(t, h.cluster.Network, append([]string{"--honour-idempotency-key"}, simArgs...)...)
	h.env = maps.Clone(workerTimings)
	maps.Copy(h.env, env)
	h.env["NATS_URL"] = h.cluster.InternalURLs()
	h.env["CHAT_API_URL"] = containers.SimAPIURL(h.sim)
	for range 3 {
		h.workers = append(h.workers, containers.StartWorker(t, h.cluster.Network, h.env))
	}

	// The test process reaches the nodes through mapped ports, which Docker
	// picks anew whenever a node starts again: dial by node name and look
	// the port up at each (re)connect, or a rolling restart would leave the
	// client with three stale addresses.
	h.js = connect(t, h.cluster.InternalURLs(),
		nats.SetCustomDialer(nodeDialer{h.cluster}),
		nats.SkipHostLookup(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(2),
	)
	// The workers provision the streams; wait for them before publishing.
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := h.js.Stream(ctx, "CHAT_COMMANDS")
		if err != nil {
			return err
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("CHAT_COMMANDS has %d replicas, want 3", r)
		}
		return nil
	})
	return h
}

// outliving is what scenarios pass to the container helpers: a failure fails
// the scenario, but logs and cleanups belong to the whole test, so a worker
// started by one scenario keeps running in the next.
type outliving struct {
	*testing.T            // the whole test: Cleanup, Logf, Helper
	sub        *testing.T // the scenario: failures
}

func (o outliving) Error(args ...any)                 { o.sub.Error(args...) }
func (o outliving) Errorf(format string, args ...any) { o.sub.Errorf(format, args...) }
func (o outliving) Fatal(args ...any)                 { o.sub.Fatal(args...) }
func (o outliving) Fatalf(format string, args ...any) { o.sub.Fatalf(format, args...) }
func (o outliving) FailNow()                          { o.sub.FailNow() }
func (o outliving) Failed() bool                      { return o.sub.Failed() || o.T.Failed() }

func (h *harness) startWorker(t *testing.T) *containers.Container {
	t.Helper()
	return containers.StartWorker(outliving{h.top, t}, h.cluster.Network, h.env)
}

// nodeDialer dials "nats-2:4222" at nats-2's current mapped client port.
type nodeDialer struct{ cluster *containers.Cluster }

func (d nodeDialer) Dial(network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	for _, n := range d.cluster.Nodes {
		if n.Name != host {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ip, err := n.C.Host(ctx)
		if err != nil {
			return nil, err
		}
		port, err := n.C.MappedPort(ctx, containers.ClientPort)
		if err != nil {
			return nil, err // stopped: the client tries the next node
		}
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, net.JoinHostPort(ip, port.Port()))
	}
	return nil, fmt.Errorf("no node named %q", host)
}

// scenario is one batch of commands and the fault that hits it.
type scenario struct {
	name            string
	commands, chats int
	// fault runs on the test goroutine once a fifth of the batch is
	// published, while publishing goes on; it returns what it did.
	fault func(t *testing.T, h *harness, f *flow) string
	// before runs ahead of the batch.
	before func(t *testing.T, h *harness)
	// pace is the pause after every 20 commands published (100ms when
	// zero: about 200 commands a second).
	pace time.Duration
}

// flow is a batch being published.
type flow struct {
	total     int
	published atomic.Int64
	done      chan struct{}
	err       error
}

// waitPublished waits until n commands are published or all of them are.
func (f *flow) waitPublished(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 2*time.Minute, func() error {
		select {
		case <-f.done:
			return nil
		default:
		}
		if p := int(f.published.Load()); p < n {
			return fmt.Errorf("%d of %d commands published", p, n)
		}
		return nil
	})
}

// row is one line of the table.
type row struct {
	scenario                                     string
	fault                                        string
	commands, results, deadLetters, effects      int
	duplicateEffects, outOfOrder, replayed, apis int
	duration                                     time.Duration
}

func (h *harness) run(t *testing.T, sc scenario) row {
	began := time.Now()
	prefix := sc.name
	// Only this batch's effects: the previous one is finished (the stream
	// was empty when it was checked).
	h.simPost(t, "/_sim/reset", "")

	f := &flow{total: sc.commands, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		defer close(f.done)
		f.err = h.publish(ctx, prefix, sc.commands, sc.chats, cmp.Or(sc.pace, 100*time.Millisecond), &f.published)
	}()
	f.waitPublished(t, sc.commands/5)
	did := sc.fault(t, h, f)
	<-f.done
	if f.err != nil {
		t.Fatalf("publishing: %v", f.err)
	}
	published := time.Since(began)

	h.waitQuiet(t, prefix, sc.commands)
	// From here on, a failure is about this batch only: the next may run.
	r := h.check(t, prefix, sc.commands)
	r.scenario, r.fault, r.duration = sc.name, did, time.Since(began)
	t.Logf("%s: %s; published in %v, done in %v", sc.name, did, published.Round(time.Millisecond), r.duration.Round(time.Millisecond))
	return r
}

// publish sends n commands over chats chats, 20 at a time with a pause of
// pace after each, so that the faults land while commands flow. Each chat's content counts 0, 1,
// 2, ... in publish order. A failed publish is retried with the same id: the
// stream drops the copy if the first try was stored after all.
func (h *harness) publish(ctx context.Context, prefix string, n, chats int, pace time.Duration, published *atomic.Int64) error {
	rng := rand.New(rand.NewPCG(uint64(len(prefix)), uint64(n)))
	next := make([]int, chats)
	for i := range n {
		c := rng.IntN(chats)
		cmd := contract.Send{ID: fmt.Sprintf("%s-%05d", prefix, i), ChatID: fmt.Sprintf("%s-chat-%03d", prefix, c), Content: strconv.Itoa(next[c])}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := actions.Publish(pctx, h.js, cmd, contract.Subjects{})
			cancel()
			if err == nil || errors.Is(err, actions.ErrAlreadyPublished) {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("command %s: %w", cmd.ID, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		next[c]++
		published.Add(1)
		if i%20 == 19 {
			time.Sleep(pace)
		}
	}
	return nil
}

// waitQuiet waits until the command stream is empty (every command acked
// after its result, or terminated after its dead letter) and every command
// of the batch has a record.
func (h *harness) waitQuiet(t *testing.T, prefix string, n int) {
	t.Helper()
	waitFor(t, 3*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := h.js.Stream(ctx, "CHAT_COMMANDS")
		if err != nil {
			return err
		}
		if m := s.CachedInfo().State.Msgs; m > 0 {
			return fmt.Errorf("%d commands still in CHAT_COMMANDS", m)
		}
		if err := h.records.update(ctx, h.js); err != nil {
			return err
		}
		if missing := h.records.missing(prefix, n); len(missing) > 0 {
			return fmt.Errorf("CHAT_COMMANDS is empty but %d commands have no record, e.g. %s", len(missing), missing[0])
		}
		return nil
	})
}

// check compares what happened with what is guaranteed.
func (h *harness) check(t *testing.T, prefix string, n int) row {
	t.Helper()
	r := row{commands: n}
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		res, dead := h.records.results[id], h.records.dead[id]
		r.results += res
		r.deadLetters += len(dead)
		if res+len(dead) != 1 {
			t.Errorf("command %s: %d results and %d dead letters, want exactly one record", id, res, len(dead))
		}
		for _, d := range dead {
			t.Errorf("command %s dead-lettered, though it could have succeeded: %s", id, d)
		}
		if h.records.replayed[id] {
			r.replayed++
		}
	}

	var effects []chatsim.Effect
	if err := json.Unmarshal([]byte(h.simGet(t, "/_sim/effects")), &effects); err != nil {
		t.Fatalf("GET /_sim/effects: %v", err)
	}
	var stats chatsim.Stats
	if err := json.Unmarshal([]byte(h.simGet(t, "/_sim/stats")), &stats); err != nil {
		t.Fatalf("GET /_sim/stats: %v", err)
	}
	r.apis = int(stats.Requests)
	seen := map[string]bool{}
	next := map[string]int{}
	for _, e := range effects { // in the order the simulator applied them
		if !strings.HasPrefix(e.IdempotencyKey, prefix+"-") {
			continue
		}
		r.effects++
		if seen[e.IdempotencyKey] {
			r.duplicateEffects++
			continue
		}
		seen[e.IdempotencyKey] = true
		if e.Content != strconv.Itoa(next[e.ChatID]) {
			r.outOfOrder++
			if r.outOfOrder <= 5 {
				t.Errorf("chat %s: effect %q (%s) when %d was next", e.ChatID, e.Content, e.IdempotencyKey, next[e.ChatID])
			}
		}
		next[e.ChatID]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct effects for %d commands", len(seen), n)
	}
	if r.outOfOrder > 0 {
		t.Errorf("%d effects out of their chat's publish order", r.outOfOrder)
	}
	if h.honour && r.duplicateEffects > 0 {
		t.Errorf("%d duplicate effects at a simulator that honours Idempotency-Key, want 0", r.duplicateEffects)
	}
	if !h.honour {
		t.Logf("without Idempotency-Key support: %d duplicate effects in %d commands", r.duplicateEffects, n)
	}
	t.Logf("simulator: %d requests, %d idempotent replays, %d injected 5xx, %d dropped after the effect",
		stats.Requests, stats.IdempotentReplays, stats.Errors, stats.Dropped)
	return r
}

// records holds every result and dead letter read so far, by command id.
type records struct {
	cursor   map[string]uint64 // stream -> last sequence read
	results  map[string]int
	replayed map[string]bool     // a result with status duplicate
	dead     map[string][]string // class and message of each dead letter
}

func newRecords() *records {
	return &records{cursor: map[string]uint64{}, results: map[string]int{}, replayed: map[string]bool{}, dead: map[string][]string{}}
}

func (r *records) missing(prefix string, n int) []string {
	var out []string
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		if r.results[id] == 0 && len(r.dead[id]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// update reads what CHAT_RESULTS and CHAT_DLQ gained since the last call.
func (r *records) update(ctx context.Context, js jetstream.JetStream) error {
	err := r.read(ctx, js, "CHAT_RESULTS", func(data []byte) error {
		var res struct{ ID, Status string }
		if err := json.Unmarshal(data, &res); err != nil {
			return err
		}
		r.results[res.ID]++
		if res.Status == "duplicate" {
			r.replayed[res.ID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.read(ctx, js, "CHAT_DLQ", func(data []byte) error {
		var dl struct {
			Command struct{ ID string }
			Error   struct{ Class, Message string }
		}
		if err := json.Unmarshal(data, &dl); err != nil {
			return err
		}
		r.dead[dl.Command.ID] = append(r.dead[dl.Command.ID], dl.Error.Class+": "+dl.Error.Message)
		return nil
	})
}

func (r *records) read(ctx context.Context, js jetstream.JetStream, stream string, add func([]byte) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	last := s.CachedInfo().State.LastSeq
	if last <= r.cursor[stream] {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   r.cursor[stream] + 1,
	})
	if err != nil {
		return err
	}
	for r.cursor[stream] < last {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if err := add(m.Data()); err != nil {
				return fmt.Errorf("%s sequence %d: %w", stream, md.Sequence.Stream, err)
			}
			r.cursor[stream] = md.Sequence.Stream
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if got == 0 {
			return fmt.Errorf("%s: read up to %d of %d", stream, r.cursor[stream], last)
		}
	}
	return nil
}

func (h *harness) simURL(t *testing.T, path string) string {
	t.Helper()
	return "http://" + h.sim.HostAddr(t, containers.SimPort) + path
}

func (h *harness) simGet(t *testing.T, path string) string {
	t.Helper()
	return h.simDo(t, http.MethodGet, path, "")
}

func (h *harness) simPost(t *testing.T, path, body string) {
	t.Helper()
	h.simDo(t, http.MethodPost, path, body)
}

// simDo calls the simulator's inspection API. The effect log of a batch is
// a few hundred KiB, hence the generous cap.
func (h *harness) simDo(t *testing.T, method, path, body string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.simURL(t, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %.500s %v", method, path, resp.StatusCode, b, err)
	}
	return string(b)
}

// The faults.

// killWorkers SIGKILLs a random worker and starts a new container in its
// place, n times, spread over the batch.
func killWorkers(n int) func(t *testing.T, h *harness, f *flow) string {
	return func(t *testing.T, h *harness, f *flow) string {
		var killed []string
		for k := range n {
			f.waitPublished(t, f.total/5+k*f.total*3/(5*n))
			i := rand.IntN(len(h.workers))
			h.workers[i].Kill(t)
			killed = append(killed, h.workers[i].Name)
			h.workers[i] = h.startWorker(t)
		}
		return fmt.Sprintf("SIGKILL %s, each replaced by a new container", strings.Join(killed, ", "))
	}
}

// streamLeader names the node leading stream's Raft group.
func (h *harness) streamLeader(t *testing.T, stream string) string {
	t.Helper()
	var leader string
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := h.js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci != nil {
			leader = ci.Leader
		}
		if leader == "" {
			return fmt.Errorf("%s has no leader", stream)
		}
		return nil
	})
	return leader
}

// stopStreamLeader stops (SIGTERM) the node leading CHAT_COMMANDS while
// commands flow, keeps it down for a third of the batch, and starts it again.
func stopStreamLeader(t *testing.T, h *harness, f *flow) string {
	leader := h.streamLeader(t, "CHAT_COMMANDS")
	node := h.cluster.Node(t, leader)
	down := time.Now()
	node.Stop(t, 10*time.Second)
	f.waitPublished(t, int(f.published.Load())+f.total/3)
	newLeader := h.streamLeader(t, "CHAT_COMMANDS")
	node.Start(t)
	h.cluster.WaitHealthy(t)
	return fmt.Sprintf("stop %s (CHAT_COMMANDS leader) for %v, %s took over, start it", leader, time.Since(down).Round(100*time.Millisecond), newLeader)
}

// restartNATSNodes stops and starts every node in turn, each back and
// current before the next goes.
func restartNATSNodes(t *testing.T, h *harness, f *flow) string {
	var did []string
	for _, n := range h.cluster.Nodes {
		began := time.Now()
		n.Stop(t, 10*time.Second)
		n.Start(t)
		h.cluster.WaitHealthy(t)
		did = append(did, fmt.Sprintf("%s %v", n.Name, time.Since(began).Round(100*time.Millisecond)))
	}
	return "stop+start+healthy " + strings.Join(did, ", ")
}

// partitionWorker cuts a worker off the network for longer than its commands'
// AckWait and idempotency lease, so the others take them over while it still
// runs, then lets it back.
func partitionWorker(t *testing.T, h *harness, f *flow) string {
	w := h.workers[rand.IntN(len(h.workers))]
	began := time.Now()
	w.Disconnect(t)
	f.waitPublished(t, int(f.published.Load())+f.total/3)
	// Pacing, not an assertion: hold the partition past the 5s lease.
	if d := 7*time.Second - time.Since(began); d > 0 {
		time.Sleep(d)
	}
	w.Connect(t)
	return fmt.Sprintf("disconnect %s from the network for %v, reconnect it", w.Name, time.Since(began).Round(100*time.Millisecond))
}

// rollWorkers replaces every worker the way the Deployment's rolling update
// does (maxSurge 1, maxUnavailable 0): a new one first, then SIGTERM to the
// old one, which must drain and exit 0.
func rollWorkers(t *testing.T, h *harness, f *flow) string {
	var did []string
	for i, old := range h.workers {
		h.workers[i] = h.startWorker(t)
		began := time.Now()
		old.Stop(t, 30*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		st, err := old.C.State(ctx)
		cancel()
		if err != nil {
			t.Fatalf("state of %s: %v", old.Name, err)
		}
		if st.ExitCode != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0", old.Name, st.ExitCode)
		}
		did = append(did, fmt.Sprintf("%s→%s (drained in %v, exit %d)", old.Name, h.workers[i].Name, time.Since(began).Round(100*time.Millisecond), st.ExitCode))
	}
	return "SIGTERM after surge: " + strings.Join(did, ", ")
}

// apiFaults makes the simulator answer 20% of calls 503 (before any effect)
// and drop 10% of connections after applying the effect, until the batch is
// published.
func apiFaults(t *testing.T, h *harness, f *flow) string {
	h.simPost(t, "/_sim/faults", `{"error_rate":0.2,"drop_rate":0.1,"latency_jitter":"3ms"}`)
	<-f.done
	h.simPost(t, "/_sim/faults", `{"latency_jitter":"3ms"}`)
	return "20% 503s, 10% connections dropped after the effect, while publishing"
}

// swapToForgetfulSim drains the workers, starts a simulator that ignores
// Idempotency-Key (and answers 10% of calls 503, before any effect) and
// three workers pointed at it.
func swapToForgetfulSim(t *testing.T, h *harness) {
	for _, w := range h.workers {
		w.Stop(t, 30*time.Second)
	}
	h.sim = containers.StartSim(outliving{h.top, t}, h.cluster.Network, append([]string{"--error-rate", "0.1"}, simArgs...)...)
	h.honour = false
	h.env = maps.Clone(h.env)
	h.env["CHAT_API_URL"] = containers.SimAPIURL(h.sim)
	h.workers = nil
	for range 3 {
		h.workers = append(h.workers, h.startWorker(t))
	}
}

func table(rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-27s %8s %7s %5s %7s %5s %5s %8s %5s %8s  %s\n",
		"scenario", "commands", "results", "dlq", "effects", "dup", "order", "replayed", "api", "duration", "fault")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-27s %8d %7d %5d %7d %5d %5d %8d %5d %8s  %s\n",
			r.scenario, r.commands, r.results, r.deadLetters, r.effects, r.duplicateEffects, r.outOfOrder, r.replayed, r.apis,
			r.duration.Round(100*time.Millisecond), r.fault)
	}
	b.WriteString("dup: effects applied twice; order: effects out of their chat's publish order; replayed: results with status duplicate; api: calls the simulator saw\n")
	return b.String()
}
