package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

var errNotReady = errors.New("bench: embedded NATS server did not start")

// Mode is what consumes the commands.
type Mode string

const (
	// ModeWorker is the full worker: per-chat order, idempotency store,
	// results, dead letters, metrics.
	ModeWorker Mode = "worker"
	// ModeNoStore is the worker with the idempotency store off.
	ModeNoStore Mode = "worker-nostore"
	// ModeUnordered is the worker with per-chat order off.
	ModeUnordered Mode = "worker-unordered"
	// ModeLimit is the minimal loop: consume, make the same API call, ack.
	ModeLimit Mode = "limit"
	// ModeFloor is the minimal loop plus the three writes the guarantees
	// need: a claim before the call, then the outcome and the result.
	ModeFloor Mode = "floor"
	// ModeFloorNoClaim is the floor without the claim: the outcome (a
	// create) and the result. It bounds what a design that claims only on
	// redeliveries could reach.
	ModeFloorNoClaim Mode = "floor-noclaim"
)

// Scenario is one measured run, on a fresh NATS server and simulator.
type Scenario struct {
	Group       string        `json:"group"` // the table it belongs to
	Mode        Mode          `json:"mode"`
	Commands    int           `json:"commands"`
	Concurrency int           `json:"concurrency"` // per worker process
	Latency     time.Duration `json:"latency"`     // added by the simulator to every call
	Chats       int           `json:"chats"`       // commands spread round-robin over this many chats
	// Rate paces publishing at this many commands/s while the worker runs;
	// 0 publishes all commands before the worker starts.
	Rate int `json:"rate,omitempty"`
	// Replicas 3 runs a cluster of three NATS servers, and every stream and
	// bucket with three replicas (`worker run --replicas 3`), as a
	// production deployment does; 0 or 1, one server.
	Replicas int `json:"replicas,omitempty"`
	// Processes > 0 runs the worker as that many child processes of
	// Runner.WorkerBinary (`worker run`); 0 runs it in this process.
	Processes int `json:"processes,omitempty"`
	// SelfProvision lets the worker binary create the streams and the
	// consumer, as it does in production, instead of this build's
	// Provision: another build's worker may refuse streams this build made
	// (an older one cannot turn off the message TTLs schedules need).
	// Needs Processes.
	SelfProvision bool `json:"-"`
	// Round numbers repeated runs of the same scenario.
	Round int `json:"round,omitempty"`
	// Timeout bounds the run (default 2 minutes).
	Timeout time.Duration `json:"-"`
}

// Result is what a scenario measured.
type Result struct {
	Scenario
	Done int `json:"done"` // commands completed (results, or acks for the limit loop)
	Dead int `json:"dead"` // dead letters (expected 0)
	// Elapsed is from starting the worker (or the first publish, when
	// paced) to the last completion.
	Elapsed time.Duration `json:"elapsed"`
	// Throughput is the steady rate in commands/s: from the completion of
	// the first `concurrency × processes` commands to the last, so start-up
	// (connecting, provisioning, the first batch's latency) is left out.
	Throughput float64 `json:"throughput"`
	// Bound is Little's law, concurrency × processes / latency (0 when the
	// simulator adds no latency); in the per-chat order group, no more than
	// chats / latency.
	Bound float64 `json:"bound,omitempty"`
	// P50 and P99 are the latency the worker adds: publish to result,
	// minus the simulator's handling time (paced runs only).
	P50 time.Duration `json:"p50,omitempty"`
	P99 time.Duration `json:"p99,omitempty"`
	// PeakRSS is the peak resident set: of this whole process (worker,
	// embedded NATS server, simulator, harness) when the worker runs
	// in-process; of the worker processes alone (summed) otherwise.
	PeakRSS uint64 `json:"peak_rss"`
	// PeakHeap is this process's peak live heap (in-process runs).
	PeakHeap uint64 `json:"peak_heap,omitempty"`
	// AllocsPerCmd is heap allocations per command in this process while
	// the commands were consumed (in-process runs; it includes the NATS
	// server's and the simulator's allocations).
	AllocsPerCmd float64 `json:"allocs_per_cmd,omitempty"`
	// CPU is the CPU time used, as a share of the machine's cores over
	// Elapsed (1 = every core busy).
	CPU float64 `json:"cpu"`
	// WorkerCPU is the CPU time the worker processes used (runs with
	// Processes): unlike the throughput, it hardly moves with the load the
	// rest of the machine carries.
	WorkerCPU time.Duration `json:"worker_cpu,omitempty"`
	// BenchCPU is the CPU time this process used meanwhile (runs with
	// Processes): the NATS server and the API simulator, mostly.
	BenchCPU time.Duration `json:"bench_cpu,omitempty"`
	// Rounds is every round's throughput, set by Best.
	Rounds []float64 `json:"rounds,omitempty"`
	// OfLimitRounds is, for a zero-latency run, each round's throughput
	// divided by the limit loop's in the same round, and OfLimit their
	// median; set by Best.
	OfLimitRounds []float64 `json:"of_limit_rounds,omitempty"`
	OfLimit       float64   `json:"of_limit,omitempty"`
	// P99Rounds is every paced round's p99, set by Best.
	P99Rounds []time.Duration `json:"p99_rounds,omitempty"`
}

// Runner runs scenarios.
type Runner struct {
	// WorkerBinary is the `worker` executable for scenarios with Processes.
	WorkerBinary string
	// Hooks for testing.B: called right before the worker starts and right
	// after the last command completed (or the run failed).
	OnStart, OnStop func()
	// Tracer, when set, traces the in-process worker and its API calls, as
	// `worker run` does with an OTLP endpoint configured; nil: off.
	Tracer trace.TracerProvider
}

// Run runs one scenario.
func (r *Runner) Run(ctx context.Context, sc Scenario) (Result, error) {
	if sc.Commands <= 0 || sc.Concurrency <= 0 {
		return Result{}, fmt.Errorf("bench: scenario needs commands and concurrency: %+v", sc)
	}
	sc.Chats = max(sc.Chats, 1)
	if sc.Timeout <= 0 {
		sc.Timeout = 2 * time.Minute
	}
	if sc.Processes > 0 && (sc.Mode == ModeLimit || sc.Mode == ModeFloor || sc.Mode == ModeFloorNoClaim) {
		return Result{}, errors.New("bench: the limit and floor loops run in-process only")
	}
	if (sc.Mode == ModeMinimal || sc.Mode == ModeMinimalStore) && (sc.Processes != 1 || sc.SelfProvision) {
		return Result{}, errors.New("bench: the minimal loop runs as one process of its own, on the consumer this build provisions")
	}
	if sc.SelfProvision && sc.Processes == 0 {
		return Result{}, errors.New("bench: only worker processes provision for themselves")
	}
	if sc.Processes > 0 && r.WorkerBinary == "" {
		return Result{}, errors.New("bench: scenario with worker processes needs Runner.WorkerBinary")
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()

	if sc.Replicas > 1 && sc.Processes == 0 && sc.Mode != ModeLimit {
		return Result{}, errors.New("bench: replicated streams only for the limit loop and runs in processes of their own")
	}
	e, err := startEnvOf(max(sc.Replicas, 1), sc.Commands, sc.Latency)
	if err != nil {
		return Result{}, err
	}
	defer e.close()

	nc, err := nats.Connect(e.ns.ClientURL(), nats.Name("bench publisher"))
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	// Results arrive on their own connection, so publishing cannot delay them.
	rc, err := nats.Connect(e.ns.ClientURL(), nats.Name("bench results"))
	if err != nil {
		return Result{}, err
	}
	defer rc.Close()
	// A PubAck that never comes (a loaded cluster can drop one) ends its
	// publish with an error after 30 s, and publish sends it again.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return Result{}, err
	}
	topo := consumer.Topology{Replicas: sc.Replicas}
	if sc.Processes == 0 {
		// The default (1000) would cap the commands in flight below a
		// concurrency above 1000.
		topo.MaxAckPending = max(1000, 4*sc.Concurrency)
	}
	var cons jetstream.Consumer
	if sc.SelfProvision {
		topo = topo.WithDefaults()
		cons, err = provisionBy(ctx, r.WorkerBinary, e, sc, js, topo)
	} else {
		// On a loaded cluster a request can go unanswered; with the run's
		// deadline on ctx, one lost request would wait out the whole run.
		err = retry(ctx, time.Minute, 10*time.Second, func(ctx context.Context) (err error) {
			cons, err = consumer.Provision(ctx, js, topo)
			return err
		})
		topo = topo.WithDefaults()
	}
	if err != nil {
		return Result{}, err
	}

	tr := newTracker(sc.Commands)
	// In this process every mode is timed at its acknowledgements, as the
	// minimal loop is: a command is acknowledged only after its result is
	// stored, and watching the results instead would charge the worker a
	// delivery per command that the limit does not pay. Paced runs measure
	// publish-to-result, and worker processes are out of reach: those watch
	// the results.
	countAcks := sc.Processes == 0 && sc.Rate == 0
	if sc.Mode != ModeLimit && !countAcks {
		sub, err := rc.Subscribe(topo.Subjects.ResultsFilter(), func(m *nats.Msg) {
			if i, ok := commandIndex(m.Header.Get(nats.MsgIdHdr)); ok {
				tr.done(i)
			}
		})
		if err != nil {
			return Result{}, err
		}
		_ = sub.SetPendingLimits(-1, -1)
	}
	if sc.Mode != ModeLimit {
		dsub, err := rc.Subscribe(topo.Subjects.DeadLettersFilter(), func(*nats.Msg) { tr.dead.Add(1) })
		if err != nil {
			return Result{}, err
		}
		_ = dsub.SetPendingLimits(-1, -1)
		if err := rc.Flush(); err != nil {
			return Result{}, err
		}
	}

	pub := newPublisher(js, topo.Subjects, sc)
	if sc.Rate == 0 {
		if err := pub.publish(ctx, 0, sc.Commands, nil); err != nil {
			return Result{}, err
		}
	}

	var (
		ms      runtime.MemStats
		mallocs uint64
		cpu0    = selfCPU()
	)
	// The runs before this one left garbage and grown goroutine stacks (2048
	// goroutines at concurrency 1024): collect them and give the memory back,
	// so that this run's RSS and pauses are its own.
	debug.FreeOSMemory()
	runtime.ReadMemStats(&ms)
	mallocs = ms.Mallocs

	var (
		stopWorker func() error
		pids       func() []int
		said       = func() string { return "" } // what the processes wrote to standard error
	)
	if r.OnStart != nil {
		r.OnStart()
	}
	start := time.Now()
	tr.begin(start)
	switch {
	case sc.Processes > 0:
		var (
			ps     *procs
			cancel context.CancelCauseFunc
		)
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		ps, err = startProcs(r.WorkerBinary, e, sc, cancel)
		if ps != nil {
			stopWorker, pids, said = ps.stop, ps.pids, ps.said
		}
	case sc.Mode == ModeLimit || sc.Mode == ModeFloor || sc.Mode == ModeFloorNoClaim:
		stopWorker, err = startLimit(ctx, e, js, cons, sc, tr)
	default:
		var counter *tracker
		if countAcks {
			counter = tr
		}
		stopWorker, err = startWorker(ctx, e, sc, topo, counter, r.Tracer)
	}
	if err != nil {
		return Result{}, err
	}
	smp := startSampler(pids)
	if sc.Rate > 0 {
		if err := waitReady(ctx, cons, max(sc.Processes, 1)); err != nil {
			_ = stopWorker()
			smp.finish()
			return Result{}, err
		}
		start = time.Now()
		tr.begin(start)
		if err := pub.paced(ctx, sc.Rate, tr); err != nil {
			_ = stopWorker()
			smp.finish()
			return Result{}, err
		}
	}
	waitErr := tr.wait(ctx)
	end := tr.last()
	if r.OnStop != nil {
		r.OnStop()
	}
	elapsed := end.Sub(start)
	runtime.ReadMemStats(&ms)
	mallocs = ms.Mallocs - mallocs
	cpu := selfCPU() - cpu0
	var workerCPU, benchCPU time.Duration
	if pids != nil {
		benchCPU = cpu
		for _, pid := range pids() {
			workerCPU += procCPU(pid)
		}
		cpu += workerCPU
	}
	rss, heap := smp.finish()
	if pids != nil {
		// The high-water mark catches peaks between samples.
		var hwm uint64
		for _, pid := range pids() {
			hwm += procStatus(pid, "VmHWM:")
		}
		rss = max(rss, hwm)
	}
	stopErr := stopWorker()
	if waitErr != nil {
		// What the processes said, even those that stopped cleanly, is why.
		err := fmt.Errorf("%s: %d of %d commands done: %w", sc.Mode, tr.count.Load(), sc.Commands, waitErr)
		if s := said(); s != "" && stopErr == nil {
			err = fmt.Errorf("%w; the processes said: %s", err, s)
		}
		return Result{}, errors.Join(err, stopErr)
	}
	if stopErr != nil {
		return Result{}, stopErr
	}
	if countAcks && sc.Mode != ModeLimit {
		// Acknowledged means stored: check that every result is there.
		if err := checkResults(ctx, js, topo, tr.count.Load()); err != nil {
			return Result{}, fmt.Errorf("%s: %w", sc.Mode, err)
		}
	}

	res := Result{Scenario: sc, Done: int(tr.count.Load()), Dead: int(tr.dead.Load()), Elapsed: elapsed,
		PeakRSS: rss, PeakHeap: heap, WorkerCPU: workerCPU, BenchCPU: benchCPU}
	res.Throughput = tr.steady(sc.Concurrency * max(sc.Processes, 1))
	res.Bound = sc.bound()
	if sc.Processes == 0 {
		res.AllocsPerCmd = float64(mallocs) / float64(sc.Commands)
	}
	if elapsed > 0 {
		res.CPU = cpu.Seconds() / elapsed.Seconds() / float64(runtime.NumCPU())
	}
	if sc.Rate > 0 {
		res.P50, res.P99 = tr.added(e, pub)
	}
	return res, nil
}

// tracker records when each command completed.
type tracker struct {
	// start is when the run began: set while result subscriptions may
	// already read it, since results come from other processes too.
	start  atomic.Pointer[time.Time]
	at     []atomic.Int64 // completion time per command, ns since start; 0: not yet
	count  atomic.Int64
	dead   atomic.Int64
	allIn  chan struct{}
	closed sync.Once
	lastNS atomic.Int64
}

func newTracker(n int) *tracker {
	t := &tracker{at: make([]atomic.Int64, n), allIn: make(chan struct{})}
	t.begin(time.Now())
	return t
}

// begin sets when the run began.
func (t *tracker) begin(at time.Time) { t.start.Store(&at) }

// since is the time since the run began.
func (t *tracker) since() time.Duration { return time.Since(*t.start.Load()) }

func (t *tracker) done(i int) {
	if i >= len(t.at) {
		return
	}
	ns := max(int64(t.since()), 1)
	if !t.at[i].CompareAndSwap(0, ns) {
		return // a duplicate result
	}
	for {
		last := t.lastNS.Load()
		if ns <= last || t.lastNS.CompareAndSwap(last, ns) {
			break
		}
	}
	if t.count.Add(1) == int64(len(t.at)) {
		t.closed.Do(func() { close(t.allIn) })
	}
}

func (t *tracker) wait(ctx context.Context) error {
	select {
	case <-t.allIn:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (t *tracker) last() time.Time { return t.start.Load().Add(time.Duration(t.lastNS.Load())) }

// steady is the completion rate from the k-th completion to the last.
func (t *tracker) steady(k int) float64 {
	times := make([]int64, 0, len(t.at))
	for i := range t.at {
		if v := t.at[i].Load(); v > 0 {
			times = append(times, v)
		}
	}
	if len(times) < 2 {
		return 0
	}
	slices.Sort(times)
	k = min(k, len(times)/2)
	span := time.Duration(times[len(times)-1] - times[k-1])
	if k < 1 || span <= 0 {
		return 0
	}
	return float64(len(times)-k) / span.Seconds()
}

// added returns the p50 and p99 of publish-to-result time minus the
// simulator's time.
func (t *tracker) added(e *env, p *publisher) (p50, p99 time.Duration) {
	var d []time.Duration
	for i := range t.at {
		done, pub := t.at[i].Load(), p.at[i].Load()
		if done == 0 || pub == 0 {
			continue
		}
		d = append(d, time.Duration(done-pub-e.simT[i].Load()))
	}
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)*99/100, len(d)-1)]
}

// publisher publishes the scenario's commands.
type publisher struct {
	js jetstream.JetStream
	s  actions.Subjects
	sc Scenario
	at []atomic.Int64 // paced runs: publish time per command, ns since tracker start
}

func newPublisher(js jetstream.JetStream, s actions.Subjects, sc Scenario) *publisher {
	return &publisher{js: js, s: s, sc: sc, at: make([]atomic.Int64, sc.Commands)}
}

func (p *publisher) command(i int) actions.Command {
	return actions.Command{ID: commandID(i), Type: contract.TypeSend, ChatID: fmt.Sprintf("bench-chat-%d", i%p.sc.Chats),
		Content: "Your order has shipped and will arrive on Tuesday.", From: contract.FromAgent}
}

// publish publishes commands [from, to) asynchronously and waits for every
// PubAck. With t set, it records each publish time.
func (p *publisher) publish(ctx context.Context, from, to int, t *tracker) error {
	var futures []jetstream.PubAckFuture
	for i := from; i < to; i++ {
		cmd := p.command(i)
		data, err := json.Marshal(cmd)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: p.s.Command(cmd.Type, cmd.ChatID), Data: data, Header: nats.Header{}}
		if t != nil {
			p.at[i].Store(int64(t.since()))
		}
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(cmd.ID))
		if err != nil {
			return fmt.Errorf("publish command %d: %w", i, err)
		}
		futures = append(futures, f)
		if (i-from)%2000 == 1999 {
			// Stay under the client's cap on outstanding publishes.
			select {
			case <-p.js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, f := range futures {
		select {
		case err := <-f.Err():
			// A PubAck lost on a loaded cluster: the same message again,
			// which the stream keeps once (its Nats-Msg-Id).
			msg := f.Msg()
			if rerr := retry(ctx, time.Minute, 10*time.Second, func(ctx context.Context) error {
				_, err := p.js.PublishMsg(ctx, msg)
				return err
			}); rerr != nil {
				return fmt.Errorf("publish %s: %w, then %w", msg.Header.Get(nats.MsgIdHdr), err, rerr)
			}
		default:
		}
	}
	return nil
}

// paced publishes all commands at rate per second, in a batch every 10ms,
// without waiting for the PubAcks between batches.
func (p *publisher) paced(ctx context.Context, rate int, t *tracker) error {
	const tick = time.Millisecond
	tk := time.NewTicker(tick)
	defer tk.Stop()
	sent := 0
	begin := time.Now()
	for sent < p.sc.Commands {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
		due := min(int(time.Since(begin).Seconds()*float64(rate)), p.sc.Commands)
		for ; sent < due; sent++ {
			cmd := p.command(sent)
			data, err := json.Marshal(cmd)
			if err != nil {
				return err
			}
			msg := &nats.Msg{Subject: p.s.Command(cmd.Type, cmd.ChatID), Data: data, Header: nats.Header{}}
			p.at[sent].Store(int64(t.since()))
			if _, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(cmd.ID)); err != nil {
				return fmt.Errorf("publish command %d: %w", sent, err)
			}
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitReady waits until n workers have pull requests waiting.
func waitReady(ctx context.Context, cons jetstream.Consumer, n int) error {
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumWaiting >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: workers not consuming: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

const (
	apiKey    = "bench-key"
	siteToken = "GSN-000000-BENCH"
)

func newClient(e *env, concurrency int, tp trace.TracerProvider) (*chat.Client, error) {
	opts := []chat.Option{
		chat.WithBaseURL(e.api),
		chat.WithCredentials(chat.Credentials{APIKey: apiKey, SiteToken: siteToken}),
		chat.WithMaxConnsPerHost(concurrency),
		chat.WithRateLimit(false),
	}
	if tp != nil {
		opts = append(opts, chat.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) }))
	}
	return chat.New(opts...)
}

// startWorker runs the worker in this process, wired as `worker run` wires
// it, on its own connection to NATS over TCP loopback. With counter set,
// each command counts as done when the worker acknowledges it.
func startWorker(ctx context.Context, e *env, sc Scenario, topo consumer.Topology, counter *tracker, tp trace.TracerProvider) (func() error, error) {
	nc, err := nats.Connect(e.ns.ClientURL(), nats.Name("bench worker"))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := consumer.Provision(ctx, js, topo)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if counter != nil {
		cons = ackCounter{Consumer: cons, tr: counter}
	}
	var store idempotency.Store
	if sc.Mode != ModeNoStore {
		kv, err := idempotency.Open(ctx, js, idempotency.Config{})
		if err != nil {
			nc.Close()
			return nil, err
		}
		store = kv
	}
	client, err := newClient(e, sc.Concurrency, tp)
	if err != nil {
		nc.Close()
		return nil, err
	}
	metrics := consumer.NewMetrics(prometheus.NewRegistry())
	w, err := consumer.New(js, cons, &execute.Executor{Client: client, SiteToken: siteToken}, store, consumer.Config{
		Topology: topo, Concurrency: sc.Concurrency, Metrics: metrics, Unordered: sc.Mode == ModeUnordered,
		Claimless: false, ShutdownGrace: 5 * time.Second, Tracer: tp, // as `worker run` wires it
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	return func() error {
		stop()
		err := <-done
		_ = nc.Drain()
		return err
	}, nil
}

// startLimit runs the minimal loop: the same consumer, `concurrency`
// goroutines making the same API call through the same client, then an ack.
// No decoding beyond what the call needs, no store, no result. ModeFloor
// adds the writes of floorWrites and nothing else.
func startLimit(ctx context.Context, e *env, js jetstream.JetStream, cons jetstream.Consumer, sc Scenario, tr *tracker) (func() error, error) {
	client, err := newClient(e, sc.Concurrency, nil)
	if err != nil {
		return nil, err
	}
	var writes *floorWrites
	claim := sc.Mode == ModeFloor
	if sc.Mode == ModeFloor || sc.Mode == ModeFloorNoClaim {
		if writes, err = newFloorWrites(ctx, js); err != nil {
			return nil, err
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(sc.Concurrency))
	if err != nil {
		return nil, err
	}
	msgs := make(chan jetstream.Msg, sc.Concurrency)
	var wg sync.WaitGroup
	for range sc.Concurrency {
		wg.Go(func() {
			for msg := range msgs {
				var cmd struct {
					ID      string `json:"id"`
					ChatID  string `json:"chat_id"`
					Content string `json:"content"`
					From    string `json:"from"`
				}
				if json.Unmarshal(msg.Data(), &cmd) != nil {
					_ = msg.Term()
					continue
				}
				var rev uint64 // 0: the outcome's write is a create
				if claim {
					var err error // this goroutine's own: startLimit's err is shared
					if rev, err = writes.claim(ctx, cmd.ID); err != nil {
						_ = msg.Nak()
						continue
					}
				}
				m, _, err := client.SendMessage(ctx, cmd.ChatID, chat.SendMessageRequest{Content: cmd.Content, From: cmd.From},
					chat.WithIdempotencyKey(cmd.ID))
				if err == nil && writes != nil {
					err = writes.settle(ctx, msg, cmd.ID, cmd.ChatID, rev, m)
				}
				if err != nil {
					_ = msg.Nak()
					continue
				}
				if msg.Ack() == nil {
					if i, ok := commandIndex(cmd.ID); ok {
						tr.done(i)
					}
				}
			}
		})
	}
	go feed(it, msgs)
	return func() error {
		it.Stop()
		wg.Wait()
		return nil
	}, nil
}

// procs are worker child processes, each watched from the moment it
// starts: one that exits before stop is called calls onExit, so that a run
// fails at once with what the process said instead of waiting out its
// timeout for commands nobody consumes.
type procs struct {
	cmds     []*exec.Cmd
	errs     []*bytes.Buffer
	exits    []chan error // each process's exit status, sent once
	onExit   func(error)  // may be nil
	stopping atomic.Bool
}

// add watches cmd, started, with its standard error in stderr.
func (ps *procs) add(cmd *exec.Cmd, stderr *bytes.Buffer) {
	i := len(ps.cmds)
	exit := make(chan error, 1)
	ps.cmds, ps.errs, ps.exits = append(ps.cmds, cmd), append(ps.errs, stderr), append(ps.exits, exit)
	go func() {
		err := cmd.Wait()
		if !ps.stopping.Load() && ps.onExit != nil {
			ps.onExit(fmt.Errorf("worker process %d exited while the run went on: %v: %s", i, err, strings.TrimSpace(stderr.String())))
		}
		exit <- err
	}()
}

// workerCmd is `worker run` as the bench runs it: the first release takes
// the same flags and variables.
func workerCmd(bin string, e *env, sc Scenario) *exec.Cmd {
	args := []string{"run", "--nats-url", e.ns.ClientURL(), "--chat-api-url", e.api, "--http-addr", "",
		"--concurrency", fmt.Sprint(sc.Concurrency), "--log-level", "error", "--shutdown-grace", "5s"}
	if sc.Replicas > 1 {
		args = append(args, "--replicas", fmt.Sprint(sc.Replicas))
	}
	if sc.Mode == ModeUnordered {
		args = append(args, "--per-chat-order=false")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOSQUARED_API_KEY="+apiKey, "GOSQUARED_SITE_TOKEN="+siteToken, "WORKER_HTTP_ADDR=")
	return cmd
}

// provisionBy runs the worker binary until it consumes, so that it creates
// the streams and the consumer its own way, and stops it before any
// command is published.
func provisionBy(ctx context.Context, bin string, e *env, sc Scenario, js jetstream.JetStream, topo consumer.Topology) (jetstream.Consumer, error) {
	cmd := workerCmd(bin, e, sc)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s to provision: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	for {
		// Each look gets an answer or gives up within two seconds: on a
		// cluster that has just formed, a JetStream request can go
		// unanswered.
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		cons, err := js.Consumer(try, topo.CommandsStream, topo.Durable)
		if err == nil {
			if info, err := cons.Info(try); err == nil && info.NumWaiting > 0 {
				cancel()
				stop()
				return cons, nil
			}
		}
		cancel()
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited before it consumed: %v: %s", bin, err, strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("%s did not provision: %w: %s", bin, ctx.Err(), strings.TrimSpace(stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startProcs starts the scenario's processes; onExit is called if one exits
// before the run stops it.
func startProcs(bin string, e *env, sc Scenario, onExit func(error)) (*procs, error) {
	ps := &procs{onExit: onExit}
	for i := range sc.Processes {
		cmd := workerCmd(bin, e, sc)
		if sc.Mode == ModeMinimal || sc.Mode == ModeMinimalStore {
			cmd = minimalCmd(bin, e, sc)
		}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Start(); err != nil {
			_ = ps.stop()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		ps.add(cmd, &stderr)
	}
	return ps, nil
}

// said is what the processes wrote to standard error, once they exited.
func (ps *procs) said() string {
	var b strings.Builder
	for i, e := range ps.errs {
		if t := strings.TrimSpace(e.String()); t != "" {
			fmt.Fprintf(&b, "[process %d] %s ", i, t)
		}
	}
	return strings.TrimSpace(b.String())
}

func (ps *procs) pids() []int {
	p := make([]int, len(ps.cmds))
	for i, c := range ps.cmds {
		p[i] = c.Process.Pid
	}
	return p
}

// stop sends SIGTERM to every worker and waits for them to exit.
func (ps *procs) stop() error {
	ps.stopping.Store(true)
	for _, c := range ps.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for i, c := range ps.cmds {
		select {
		case err := <-ps.exits[i]:
			if err != nil {
				errs = append(errs, fmt.Errorf("worker process %d: %w: %s", i, err, ps.errs[i].String()))
			}
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			<-ps.exits[i]
			errs = append(errs, fmt.Errorf("worker process %d did not stop within 30s of SIGTERM", i))
		}
	}
	return errors.Join(errs...)
}

// floorWrites are the three writes the worker's guarantees need for each
// command, shaped like the worker's and with nothing else around them: a
// claim created in a KV bucket before the API call; after it, the outcome
// written over the claim and the result published with a Nats-Msg-Id, both
// stored before the ack. The minimal loop with these writes is the floor
// that no worker keeping those guarantees can beat.
type floorWrites struct {
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	subjects actions.Subjects
}

func newFloorWrites(ctx context.Context, js jetstream.JetStream) (*floorWrites, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "BENCH_FLOOR", History: 1, TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	return &floorWrites{js: js, kv: kv, subjects: consumer.Topology{}.WithDefaults().Subjects}, nil
}

// floorClaim is about the size of the worker's claim record.
var floorClaim = []byte(`{"id":"","hash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","state":"pending","owner":"bench/1","lease_expires":"2026-01-01T00:00:00Z","attempts":0}`)

func floorKey(id string) string { return strings.ReplaceAll(id, ":", "_") }

func (f *floorWrites) claim(ctx context.Context, id string) (uint64, error) {
	return f.kv.Update(ctx, floorKey(id), floorClaim, 0)
}

func (f *floorWrites) settle(ctx context.Context, msg jetstream.Msg, id, chatID string, rev uint64, m *chat.Message) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	result, err := f.js.PublishMsgAsync(&nats.Msg{Subject: f.subjects.Result(contract.TypeSend, chatID), Data: body},
		jetstream.WithMsgID(id+":"+strconv.FormatUint(meta.Sequence.Stream, 10)))
	if err != nil {
		return err
	}
	if _, err := f.kv.Update(ctx, floorKey(id), body, rev); err != nil {
		return err
	}
	select {
	case <-result.Ok():
		return nil
	case err := <-result.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackCounter hands the worker its messages, and records each command as
// done when the worker acknowledges it: the same moment, and the same
// cost, as the minimal loop's count.
type ackCounter struct {
	jetstream.Consumer
	tr *tracker
}

func (c ackCounter) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	return countingIter{MessagesContext: it, tr: c.tr}, nil
}

type countingIter struct {
	jetstream.MessagesContext
	tr *tracker
}

func (it countingIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	msg, err := it.MessagesContext.Next(opts...)
	if err != nil {
		return nil, err
	}
	return countedMsg{Msg: msg, tr: it.tr}, nil
}

type countedMsg struct {
	jetstream.Msg
	tr *tracker
}

func (m countedMsg) Ack() error {
	err := m.Msg.Ack()
	if err == nil {
		if i, ok := commandIndex(m.Headers().Get(nats.MsgIdHdr)); ok {
			m.tr.done(i)
		}
	}
	return err
}

// checkResults fails unless the results stream holds a result for each of
// the done commands.
func checkResults(ctx context.Context, js jetstream.JetStream, topo consumer.Topology, done int64) error {
	s, err := js.Stream(ctx, topo.ResultsStream)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if int64(info.State.Msgs) != done {
		return fmt.Errorf("%d commands acknowledged but %d results stored", done, info.State.Msgs)
	}
	return nil
}
