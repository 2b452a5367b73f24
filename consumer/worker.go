package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Executor carries out one command against the API. *execute.Executor is
// the production implementation; tests substitute their own.
type Executor interface {
	Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error)
}

// Worker consumes commands and executes them. It routes: it fetches
// messages and hands each to its chat's lane (order.go), or straight to a
// runner when commands keep no order; the components it wires do the rest,
// each with its own state and dependencies:
//
//   - exec, the executor: one command's claim, API calls and decision (handle.go, call.go);
//   - done, the completer: storing the result or dead letter, then the ack, or the hand-back (settle.go);
//   - order, the orderer: whether a command is its chat's head, and the wait for it (order.go, wait.go);
//   - gate, the project gate: pauses and rate budgets (projects.go);
//   - rescuer: the max-deliveries backstop (backstop.go);
//   - releaser: releases of claims, and retries of refused ones (release.go);
//   - lag: the consumer's lag in the metrics (lag.go).
type Worker struct {
	js   jetstream.JetStream
	cons jetstream.Consumer // the v1 subjects' (projects' are loops.go's)
	cfg  Config
	log  *zap.Logger
	m    *Metrics
	tr   tracer

	lanes    *lanes // nil when commands keep no order
	exec     *executor
	done     *completer
	order    *orderer
	gate     *projectGate // nil without Config.Projects
	rescuer  *rescuer
	releaser *releaser
	lag      lagWatcher

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
	topo := cfg.Topology
	w := &Worker{js: js, cons: cons, cfg: cfg, log: cfg.Logger, m: cfg.Metrics, tr: newTracer(cfg.Tracer), stopping: make(chan struct{})}
	if !cfg.Unordered {
		w.lanes = newLanes()
	}
	if cfg.Projects != nil {
		def, _ := cfg.Projects.Project(actions.Command{})
		w.gate = newProjectGate(cfg.Projects, def, cfg.Logger, cfg.ProjectMetrics, topo.AckWait)
		w.gate.store, w.gate.outage, w.gate.me = cfg.ProjectStates, cfg.Outage, cfg.Name
	}
	w.releaser = &releaser{store: store, log: cfg.Logger}
	caps := &capGate{counts: cfg.Caps, gate: w.gate, log: cfg.Logger}
	if w.gate != nil {
		caps.settings = w.gate.settings
	}
	recs := &records{js: js, topo: topo, name: cfg.Name, now: time.Now}
	w.exec = &executor{exec: exec, store: store, policy: cfg.Retry, subjects: topo.Subjects, ackWait: topo.AckWait,
		slots: newSlots(cfg.Concurrency), gate: w.gate, caps: caps, releaser: w.releaser, records: recs, tr: w.tr, m: cfg.Metrics,
		now: time.Now, stopping: w.stopping, claimless: cfg.Claimless && !cfg.Unordered}
	w.done = &completer{js: js, store: store, policy: cfg.Retry, subjects: topo.Subjects, releaser: w.releaser, tr: w.tr,
		m: cfg.Metrics, latency: cfg.Latency, log: cfg.Logger, now: time.Now}
	w.order = &orderer{js: js, topo: topo, lanes: w.lanes, m: cfg.Metrics, log: cfg.Logger, tr: w.tr,
		waitMax: orderWaitFor(topo.AckWait), concurrency: cfg.Concurrency, stopping: w.stopping}
	w.exec.awake = w.order.awake
	w.rescuer = &rescuer{js: js, topo: topo, store: store, records: recs, done: w.done, tr: w.tr, m: cfg.Metrics, log: cfg.Logger}
	w.lag = lagWatcher{js: js, topo: topo, m: cfg.Metrics, log: cfg.Logger, every: 10 * time.Second}
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
	if w.gate != nil {
		return w.gate.notReady()
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
	// they stop last, once the work and the backstop are done.
	w.releaser.Start(ctx)
	defer w.releaser.Stop()
	if w.lanes != nil {
		if err := w.order.open(ctx); err != nil {
			return err
		}
	}
	if w.exec.caps.counts == nil {
		// Without the bucket, sends under a cap wait (as for a store
		// outage) rather than go out uncounted.
		counts, err := OpenChatCaps(ctx, w.js, CapsConfig{Replicas: w.cfg.Topology.Replicas, Storage: w.cfg.Topology.Storage})
		if err != nil {
			w.log.Error("frequency caps: the bucket of counts cannot be opened: sends under a cap wait until a restart", zap.Error(err))
		}
		w.exec.caps.counts = counts
	}
	if err := w.rescuer.Start(ctx); err != nil {
		return err
	}
	defer w.rescuer.Stop()
	if w.gate != nil {
		w.gate.Start(ctx)
		defer w.gate.Stop()
	}
	v1, err := w.open("", w.cons, 0)
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.cfg.Topology.CommandsStream, err)
	}
	// In-flight work outlives ctx by up to the grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	pool := startRunners(2*w.cfg.Concurrency, w.cfg.Concurrency)
	projects := w.startProjects(ctx, workCtx, pool)
	stopWatch := context.AfterFunc(ctx, func() {
		w.stopOnce.Do(func() { close(w.stopping) })
		v1.it.Drain()
		projects.drain()
	})
	defer stopWatch()

	// The keep-alives of queued commands and the lag watcher run as long
	// as the work.
	keepAliveCtx, stopKeepAlive := context.WithCancel(workCtx)
	var background sync.WaitGroup
	defer func() { stopKeepAlive(); background.Wait() }()
	background.Go(func() { w.lag.Run(keepAliveCtx) })
	if w.lanes != nil {
		background.Go(func() { w.order.keepQueuedAlive(keepAliveCtx) })
	}

	err = w.fetch(ctx, workCtx, v1, pool)
	if err != nil {
		// The v1 consumer is gone: the worker stops, its projects' loops too.
		projects.drain()
	}
	projects.wait()
	if err != nil {
		pool.stop()
		return err
	}
	if !pool.stopWithin(w.cfg.ShutdownGrace) {
		w.log.Warn("shutdown grace over: handing back commands still in flight")
		cancelWork()
		pool.stop()
	}
	return nil
}

// fetch hands each message l's iterator yields to dispatch, until the
// iterator is drained (ctx ended), stopped (its project was removed) or the
// consumer is gone. Messages fetched once ctx ended, or once the project
// was removed, go back to the stream at once.
func (w *Worker) fetch(ctx, workCtx context.Context, l *fetchLoop, pool *runners) error {
	it := l.it
	start := func(f func()) bool { return pool.start(ctx, f) }
	failures := 0
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			it.Stop()
			return fmt.Errorf("consumer %s is gone: run `worker provision` (or restart the worker) to create it again: %w", l.durable(w.cfg.Topology), err)
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
		if ctx.Err() != nil || l.removed.Load() {
			w.done.handBack(msg, 0, nil)
			continue
		}
		w.dispatch(workCtx, msg, start, &l.runs)
	}
}

// dispatch starts work on msg: in its chat's lane when commands keep
// per-chat order, on its own otherwise. start runs a function in a free
// slot, or reports false when the worker is shutting down. runs are the
// delivery runs of msg's consumer: a chat's commands all come through one.
func (w *Worker) dispatch(workCtx context.Context, msg jetstream.Msg, start func(func()) bool, runs *deliveryRuns) {
	token, ordered := w.orderToken(msg.Subject())
	if !ordered {
		run := func() {
			if w.Draining() {
				w.done.handBack(msg, 0, nil) // waited in the queue past the start of a shutdown
				return
			}
			w.handle(workCtx, msg, nil)
		}
		if !start(run) {
			w.done.handBack(msg, 0, nil)
		}
		return
	}
	q := queued{msg: msg}
	if meta, err := msg.Metadata(); err == nil {
		q.meta, q.run = meta, runs.observe(meta.Sequence.Consumer)
	}
	if l := w.lanes.add(token, q); l != nil {
		if !start(func() { w.runLane(workCtx, l) }) {
			for _, m := range w.lanes.takeAll(l) {
				w.done.handBack(m, 0, nil)
			}
			w.lanes.next(l) // removes the now empty lane
		}
	}
}

// orderToken returns the filter of a command's chat (its project's, or v1
// subjects') when commands are kept in per-chat order: it names the chat's
// lane. A subject that cannot be parsed needs no order (it becomes a dead
// letter).
func (w *Worker) orderToken(subject string) (string, bool) {
	if w.lanes == nil {
		return "", false
	}
	s := w.cfg.Topology.Subjects
	r, err := s.ParseCommand(subject)
	if err != nil {
		return "", false
	}
	return r.Subjects(s).ChatCommandsFilter(r.Chat), true
}

// tick calls f every d until ctx is done, the first time after d.
func tick(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
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

// handle executes one command message and settles it: it acknowledges the
// message only after its result or dead letter is stored. It does not check
// per-chat order: runLane does that before calling it. meta is the
// message's metadata when the caller has already parsed it (nil
// otherwise). It reports whether the message left the stream (acknowledged
// or terminated) rather than being handed back.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	ctx, span := w.tr.command(ctx, msg.Subject(), msg.Headers())
	return w.handleIn(ctx, span, msg, meta, false, nil, nil)
}

// handleIn is handle within the delivery's span, which it ends. head says
// that a lane found the command its chat's head (runLane). claim, if not
// nil, is the command's claim made ahead (ahead.go), which the executor
// uses or releases; settling, if not nil, is called once the command has a
// result, before the result is stored.
func (w *Worker) handleIn(ctx context.Context, span trace.Span, msg jetstream.Msg, meta *jetstream.MsgMetadata, head bool, claim *claimed, settling func()) bool {
	d := newDelivery(w.log, msg, msg.Subject(), msg.Data(), msg.Headers())
	d.meta, d.span, d.head, d.claimed = meta, span, head, claim
	defer endCommand(d)
	w.m.inFlight(1)
	defer w.m.inFlight(-1)
	v := w.exec.process(ctx, d)
	if v.result != nil && settling != nil {
		settling()
	}
	return w.done.settle(ctx, d, v)
}
