package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Executor carries out one command against the API. *execute.Executor is
// the production implementation; tests substitute their own.
type Executor interface {
	Execute(ctx context.Context, cmd actions.Command) (actions.Outcome, error)
}

// Config configures a Worker. Zero fields take the defaults in the README.
type Config struct {
	Topology Topology
	Retry    RetryPolicy
	// Concurrency is how many API calls the worker makes at once; 64. Up to
	// twice as many commands are handled at once: while Concurrency of them
	// call the API, the others record outcomes or claim their ids, so that
	// bookkeeping never holds up a call (see Run).
	Concurrency int
	// ShutdownGrace is how long in-flight commands may take to finish after
	// Run's context is cancelled; then they are handed back unacknowledged.
	ShutdownGrace time.Duration // 20 s
	// Name identifies this worker in dead letters ("host/pid").
	Name string
	// Unordered turns per-chat order off: commands of one chat may then run
	// in parallel (one fewer JetStream round trip per command).
	Unordered bool
	Logger    *zap.Logger
	Metrics   *Metrics // optional
}

func (c Config) withDefaults() Config {
	c.Topology = c.Topology.WithDefaults()
	c.Retry = c.Retry.WithDefaults()
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 20 * time.Second
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
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

	calls    chan struct{}    // a slot per API call in flight (Concurrency)
	commands jetstream.Stream // for the per-chat order check
	lanes    *lanes
	runs     deliveryRuns // used by Run's loop only

	stopping chan struct{} // closed when Run begins to drain
	stopOnce sync.Once
}

// New returns a worker that consumes from cons (see Provision) and
// publishes results and dead letters through js. A nil store turns
// idempotency off (benchmarks only: redeliveries may then repeat effects).
func New(js jetstream.JetStream, cons jetstream.Consumer, exec Executor, store idempotency.Store, cfg Config) *Worker {
	cfg = cfg.withDefaults()
	if store == nil {
		store = noStore{}
	}
	w := &Worker{js: js, cons: cons, exec: exec, store: store, cfg: cfg, log: cfg.Logger, m: cfg.Metrics, now: time.Now,
		calls: make(chan struct{}, cfg.Concurrency), stopping: make(chan struct{})}
	if !cfg.Unordered {
		w.lanes = newLanes()
	}
	return w
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
	// A short pull expiry and a heartbeat every second notice a lost NATS
	// connection, or a pull request the server does not hold, within two
	// seconds and pull again. The second case happens: under overload
	// (5,000/s offered to one worker) the client sometimes waited on a
	// request while the server listed none waiting, until two heartbeats
	// were missed; at the default heartbeat (half the expiry) that stalled
	// the worker for 5 s.
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

	// A fixed set of goroutines runs the work: they live as long as Run, so
	// their stacks, grown once by the HTTP and NATS clients, are reused
	// rather than grown again for every command (copystack was 5% of the
	// CPU with a goroutine per command).
	//
	// There are twice as many goroutines as API call slots (see call). When
	// a wave of calls ends together, each command still has its outcome and
	// result to store, and the next command its id to claim: all of it
	// JetStream round trips that queue for the CPU behind one another. With
	// one goroutine per slot, every slot sat idle through that queue (at 50
	// ms and concurrency 256 the worker reached 73% of Little's law, the
	// minimal loop 95%). With twice as many, the next commands have claimed
	// their ids while the previous calls ran and take the slots the moment
	// they free, and the bookkeeping runs during the next calls.
	//
	// Up to Concurrency pieces of work wait in the channel, so a goroutine
	// that frees up starts its next command at once. Unbuffered, it waited
	// for this loop to be scheduled, once per command: when many API calls
	// finish together, that loop queues behind every goroutine they woke, and
	// at concurrency 1024 and 200 ms the worker reached 74 % of Little's law
	// instead of 81 %. Work that waited past the start of a shutdown hands its
	// commands back (see Draining) rather than running them.
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
			w.handBack(msg)
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
				w.handBack(msg) // waited in the queue past the start of a shutdown
				return
			}
			w.Handle(workCtx, msg)
		}
		if !start(run) {
			w.handBack(msg)
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
				w.handBack(m)
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

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (w *Worker) nakMsg(msg jetstream.Msg, delay time.Duration) {
	if err := msg.NakWithDelay(delay); err != nil {
		w.log.Warn("handing back a command", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

func (w *Worker) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.log.Warn("handing back a command", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}
