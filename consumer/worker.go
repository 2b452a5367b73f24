package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Executor carries out one command against the API. *execute.Executor is
// the production implementation; tests substitute their own.
type Executor interface {
	Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error)
}

// Worker consumes commands and executes them.
type Worker struct {
	js    jetstream.JetStream
	cons  jetstream.Consumer
	exec  Executor
	store idempotency.Store
	cfg   Config
	log   *zap.Logger
	m     *Metrics
	now   func() time.Time
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	slots    *slots           // a slot per API call in flight (Concurrency), shared in turn by projects
	commands jetstream.Stream // for the per-chat order check
	lanes    *lanes
	runs     deliveryRuns // used by Run's loop only
	projects *projectGate // nil without Config.Projects
	// orderWaitMax bounds a lane's wait in place for its command to become
	// its chat's head; waiting counts the lanes waiting (wait.go).
	orderWaitMax time.Duration
	waiting      atomic.Int64

	releases releases // refused releases, tried again (release.go)

	stopping chan struct{} // closed when Run begins to drain
	stopOnce sync.Once
}

// New returns a worker that consumes from cons (see Provision) and
// publishes results and dead letters through js. A nil store turns
// idempotency off (benchmarks only: redeliveries may then repeat effects).
// New validates cfg (see Config.Validate), with the idempotency store's
// lease when the store says what it is.
func New(js jetstream.JetStream, cons jetstream.Consumer, exec Executor, store idempotency.Store, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if l, ok := store.(interface{ Lease() time.Duration }); ok {
		cfg.lease = l.Lease()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		store = noStore{}
	}
	w := &Worker{js: js, cons: cons, exec: exec, store: store, cfg: cfg, log: cfg.Logger, m: cfg.Metrics, now: time.Now,
		slots: newSlots(cfg.Concurrency), stopping: make(chan struct{}), orderWaitMax: orderWaitFor(cfg.Topology.AckWait)}
	if !cfg.Unordered {
		w.lanes = newLanes()
	}
	if cfg.Tracer != nil {
		w.tracer = cfg.Tracer.Tracer(telemetry.Instrumentation)
	}
	if cfg.Projects != nil {
		def, _ := cfg.Projects.Project(actions.Command{})
		w.projects = newProjectGate(cfg.Projects, def, cfg.Logger, cfg.ProjectMetrics)
	}
	return w, nil
}

// NotReady says why the worker should not be sent traffic ("" when it may
// be): it is draining, its first check of the default project's
// credentials is not done, or the API refused them (the default project is
// paused). The reason never holds credentials.
func (w *Worker) NotReady() string {
	if w.Draining() {
		return "draining"
	}
	if w.projects != nil {
		return w.projects.notReady()
	}
	return ""
}

// Draining reports whether Run is shutting down.
func (w *Worker) Draining() bool {
	select {
	case <-w.stopping:
		return true
	default:
		return false
	}
}

// Run consumes until ctx is cancelled, then drains: it stops fetching, hands
// back commands it fetched but had not started, lets in-flight commands
// finish within the shutdown grace, and hands back any still running.
func (w *Worker) Run(ctx context.Context) error {
	// Refused releases are tried again for as long as Run (release.go);
	// this runs last, once the work and the backstop are done.
	relCtx, stopReleases := context.WithCancel(context.WithoutCancel(ctx))
	w.releases.ctx = relCtx
	defer func() { stopReleases(); w.releases.wg.Wait() }()
	if !w.cfg.Unordered {
		var err error
		if w.commands, err = w.js.Stream(ctx, w.cfg.Topology.CommandsStream); err != nil {
			return fmt.Errorf("stream %s: %w", w.cfg.Topology.CommandsStream, err)
		}
	}
	stopBackstop, err := w.watchMaxDeliveries(ctx)
	if err != nil {
		return err
	}
	defer stopBackstop()
	if g := w.projects; g != nil {
		// Pause probes live as long as Run.
		probeCtx, stopProbes := context.WithCancel(context.WithoutCancel(ctx))
		g.ctx = probeCtx
		defer func() { stopProbes(); g.probes.Wait() }()
		// One cheap read before the first command: a refused key pauses
		// the default project (and /readyz says so) rather than every
		// command finding out.
		g.checkDefault()
	}
	// A short pull expiry and a heartbeat every second notice a lost NATS
	// connection, or a pull request the server does not hold, within two
	// seconds and pull again (docs/performance-notes.md: the overload stall).
	it, err := w.cons.Messages(jetstream.PullMaxMessages(w.cfg.Concurrency), jetstream.PullExpiry(5*time.Second),
		jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.cfg.Topology.CommandsStream, err)
	}
	// In-flight work outlives ctx by up to the grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopWatch := context.AfterFunc(ctx, func() {
		w.stopOnce.Do(func() { close(w.stopping) })
		it.Drain()
	})
	defer stopWatch()

	keepAliveCtx, stopKeepAlive := context.WithCancel(workCtx)
	defer stopKeepAlive()
	go w.watchLag(keepAliveCtx, 10*time.Second)
	if w.lanes != nil {
		go w.keepQueuedAlive(keepAliveCtx)
	}
	if w.projects != nil {
		go w.projects.sweepEvery(keepAliveCtx, w.cfg.Topology.AckWait)
	}

	// A fixed set of goroutines runs the work, so their stacks, grown once
	// by the HTTP and NATS clients, are reused rather than grown for every
	// command. There are twice as many as API call slots (see call): while
	// some commands call the API, the others claim ids and store outcomes,
	// so bookkeeping never holds a slot. Up to Concurrency pieces of work
	// wait in the channel, so a goroutine that frees up starts its next
	// command without waiting for this loop to be scheduled. Work that
	// waited past the start of a shutdown hands its commands back (see
	// Draining) rather than running them. docs/performance-notes.md has the
	// measurements behind each of these choices.
	var wg sync.WaitGroup
	work := make(chan func(), w.cfg.Concurrency)
	for range 2 * w.cfg.Concurrency {
		wg.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	start := func(f func()) bool {
		select {
		case work <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	failures := 0
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			it.Stop()
			close(work)
			wg.Wait()
			return fmt.Errorf("consumer %s is gone: run `worker provision` (or restart the worker) to create it again: %w", w.cfg.Topology.Durable, err)
		}
		if err != nil {
			// Missed heartbeats and similar: the iterator recovers by itself
			// once NATS is reachable again.
			failures++
			w.log.Warn("fetching commands", zap.Error(err))
			sleepCtx(ctx, min(time.Duration(failures)*100*time.Millisecond, 2*time.Second))
			continue
		}
		failures = 0
		if ctx.Err() != nil {
			w.handBack(msg, 0, nil)
			continue
		}
		w.dispatch(workCtx, msg, start)
	}

	close(work)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownGrace):
		w.log.Warn("shutdown grace over: handing back commands still in flight")
		cancelWork()
		<-done
	}
	return nil
}

// dispatch starts work on msg: in its chat's lane when commands keep
// per-chat order, on its own otherwise. start runs a function in a free
// slot, or reports false when the worker is shutting down.
func (w *Worker) dispatch(workCtx context.Context, msg jetstream.Msg, start func(func()) bool) {
	token, ordered := w.orderToken(msg.Subject())
	if !ordered {
		run := func() {
			if w.Draining() {
				w.handBack(msg, 0, nil) // waited in the queue past the start of a shutdown
				return
			}
			w.handle(workCtx, msg, nil)
		}
		if !start(run) {
			w.handBack(msg, 0, nil)
		}
		return
	}
	q := queued{msg: msg}
	if meta, err := msg.Metadata(); err == nil {
		q.meta, q.run = meta, w.runs.observe(meta.Sequence.Consumer)
	}
	if l := w.lanes.add(token, q); l != nil {
		if !start(func() { w.runLane(workCtx, l) }) {
			for _, m := range w.lanes.takeAll(l) {
				w.handBack(m, 0, nil)
			}
			w.lanes.next(l) // removes the now empty lane
		}
	}
}

// orderToken returns the chat token of a command subject when commands are
// kept in per-chat order; a subject that cannot be parsed needs no order
// (it becomes a dead letter).
func (w *Worker) orderToken(subject string) (string, bool) {
	if w.lanes == nil {
		return "", false
	}
	_, token, err := w.cfg.Topology.Subjects.ParseCommand(subject)
	return token, err == nil
}

// sleepCtx waits for d, or until ctx is done: then it reports false.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
