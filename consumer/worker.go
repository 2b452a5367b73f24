package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Executor carries out one command against the API. *actions.Executor is
// the production implementation; tests substitute their own.
type Executor interface {
	Execute(ctx context.Context, cmd actions.Command) (actions.Outcome, error)
}

// Config configures a Worker. Zero fields take the defaults in the README.
type Config struct {
	Topology    Topology
	Retry       RetryPolicy
	Concurrency int // commands executed at once; 64
	// ShutdownGrace is how long in-flight commands may take to finish after
	// Run's context is cancelled; then they are handed back unacknowledged.
	ShutdownGrace time.Duration // 20 s
	// Name identifies this worker in dead letters ("host/pid").
	Name    string
	Logger  *zap.Logger
	Metrics *Metrics // optional
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

	draining atomic.Bool
}

// New returns a worker that consumes from cons (see Provision) and
// publishes results and dead letters through js. A nil store turns
// idempotency off (benchmarks only: redeliveries may then repeat effects).
func New(js jetstream.JetStream, cons jetstream.Consumer, exec Executor, store idempotency.Store, cfg Config) *Worker {
	cfg = cfg.withDefaults()
	if store == nil {
		store = noStore{}
	}
	return &Worker{js: js, cons: cons, exec: exec, store: store, cfg: cfg, log: cfg.Logger, m: cfg.Metrics, now: time.Now}
}

// Draining reports whether Run is shutting down.
func (w *Worker) Draining() bool { return w.draining.Load() }

// Run consumes until ctx is cancelled, then drains: it stops fetching, hands
// back commands it fetched but had not started, lets in-flight commands
// finish within the shutdown grace, and hands back any still running.
func (w *Worker) Run(ctx context.Context) error {
	it, err := w.cons.Messages(jetstream.PullMaxMessages(w.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.cfg.Topology.CommandsStream, err)
	}
	// In-flight work outlives ctx by up to the grace period.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopWatch := context.AfterFunc(ctx, func() {
		w.draining.Store(true)
		it.Drain()
	})
	defer stopWatch()

	var wg sync.WaitGroup
	slots := make(chan struct{}, w.cfg.Concurrency)
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			// Missed heartbeats and similar: the iterator recovers by itself
			// once NATS is reachable again.
			w.log.Warn("fetching commands", zap.Error(err))
			continue
		}
		if ctx.Err() != nil {
			w.handBack(msg)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			w.handBack(msg)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			w.Handle(workCtx, msg)
		}()
	}

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

func (w *Worker) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.log.Warn("handing back a command", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}
