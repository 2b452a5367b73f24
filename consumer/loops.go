package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Fetch loops
//
// A worker consumes through one durable consumer per project it serves
// (contract v2: chat.commands.<project>.*.*), plus the durable of v1
// subjects (chat.commands.*.*), each with its own fetch loop and its own
// MaxAckPending. A project's commands that wait in the consumer (handed
// back for their rate budget, a pause, an outage) fill only its own
// consumer's pending limit, so the server keeps delivering every other
// project's commands whatever that backlog's size. The loops share the
// runners (runners.go) and the API call slots (slots.go): a loop waiting
// to hand over a command queues behind the others' (a channel's waiting
// senders go in turn), so one project's deliveries take the runners in
// turn with the others', and the slots go round the projects waiting for
// one. v1 commands all share the v1 durable: their projects are read from
// the body, too late to choose a consumer (docs/failures.md).
//
// The projects served are read again every reloadEvery: a project added to
// the configuration gets its durable and a loop, one removed loses its
// loop (its durable stays: another replica may still serve it, and its
// commands wait in the stream: docs/failures.md).

// ProjectNames lists the projects a worker serves, the default one included
// (*execute.Executor implements it). Asked every reloadEvery, it may change.
type ProjectNames interface {
	Names() []string
}

const (
	// reloadEvery is how often the worker asks which projects it serves.
	reloadEvery = time.Second
	// provisionAtOnce bounds the durables created at once (at start, 1,000
	// projects' take about a second: docs/sizing.md).
	provisionAtOnce = 16
)

// fetchLoop is one durable consumer's fetch loop.
type fetchLoop struct {
	project string // "" for v1 subjects
	cons    jetstream.Consumer
	it      jetstream.MessagesContext
	runs    deliveryRuns // used by the loop only
	// removed is set when the project left the configuration: what the
	// loop still yields goes back to the stream.
	removed atomic.Bool
}

// durable names l's consumer in messages.
func (l *fetchLoop) durable(t Topology) string {
	if l.project == "" {
		return t.WithDefaults().Durable
	}
	return ProjectDurable(t, l.project)
}

// open starts pulling from cons; projects is how many projects the worker
// serves (see pullTiming).
func (w *Worker) open(project string, cons jetstream.Consumer, projects int) (*fetchLoop, error) {
	expiry, heartbeat := pullTiming(project, projects)
	it, err := cons.Messages(jetstream.PullMaxMessages(w.cfg.Concurrency), jetstream.PullExpiry(expiry),
		jetstream.PullHeartbeat(heartbeat))
	if err != nil {
		return nil, err
	}
	return &fetchLoop{project: project, cons: cons, it: it}, nil
}

// pullTiming is how long a loop's pull request lasts and how often the
// server says it still holds it while no command comes. A short expiry and
// a heartbeat every second notice a lost NATS connection, or a pull request
// the server does not hold, within two seconds and pull again
// (docs/performance-notes.md: the overload stall): the v1 loop's, and
// every loop's while the worker serves at most 50 projects. Beyond, an
// idle project's loop costs its share of the heartbeats and the pulls, so
// they stretch with the projects, up to a minute and 12 s: at 1,000
// projects, 83 heartbeats and 17 pulls a second rather than 1,200
// (docs/sizing.md). A loop with commands to fetch pulls again as it takes
// them, whatever its expiry: only an idle project notices a lost pull
// request later, within two heartbeats.
func pullTiming(project string, projects int) (expiry, heartbeat time.Duration) {
	expiry = 5 * time.Second
	if project != "" {
		expiry = min(time.Minute, expiry*time.Duration(max(1, projects/50)))
	}
	return expiry, expiry / 5
}

// projectLoops runs the fetch loops of the projects served.
type projectLoops struct {
	w            *Worker
	js           jetstream.JetStream
	names        ProjectNames
	ctx, workCtx context.Context
	pool         *runners

	mu     sync.Mutex
	want   int // the projects served, as last asked
	loops  map[string]*fetchLoop
	closed bool
	wg     sync.WaitGroup
}

// served lists the projects whose v2 commands this worker consumes: those
// of Config.Projects when it lists them, else the default project alone.
func (w *Worker) served() ProjectNames {
	if n, ok := w.cfg.Projects.(ProjectNames); ok {
		return n
	}
	return defaultOnly{}
}

type defaultOnly struct{}

func (defaultOnly) Names() []string { return []string{contract.DefaultProject} }

// startProjects creates the durables of the projects served and starts
// their loops, then follows the configuration until ctx ends.
func (w *Worker) startProjects(ctx, workCtx context.Context, pool *runners) *projectLoops {
	pl := &projectLoops{w: w, js: w.js, names: w.served(), ctx: ctx, workCtx: workCtx, pool: pool, loops: map[string]*fetchLoop{}}
	pl.sync()
	pl.wg.Go(func() { tick(ctx, reloadEvery, pl.sync) })
	return pl
}

// sync starts the loops of projects added to the configuration and stops
// those of projects removed from it.
func (pl *projectLoops) sync() {
	want := pl.names.Names()
	pl.mu.Lock()
	pl.want = len(want)
	var added []string
	for _, name := range want {
		if _, ok := pl.loops[name]; !ok {
			added = append(added, name)
		}
	}
	wanted := make(map[string]bool, len(want))
	for _, name := range want {
		wanted[name] = true
	}
	for name, l := range pl.loops {
		if !wanted[name] {
			delete(pl.loops, name)
			l.removed.Store(true)
			l.it.Stop()
			pl.w.log.Info("project removed from the configuration: its commands wait in the stream", zap.String("project", name))
		}
	}
	pl.mu.Unlock()
	if len(added) == 0 {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, provisionAtOnce)
	for _, name := range added {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pl.add(name)
		})
	}
	wg.Wait()
}

// add creates a project's durable and starts its loop; a failure is logged
// and tried again at the next sync.
func (pl *projectLoops) add(name string) {
	ctx, cancel := context.WithTimeout(pl.ctx, 10*time.Second)
	defer cancel()
	cons, err := ProvisionProject(ctx, pl.js, pl.w.cfg.Topology, name)
	if err != nil {
		if pl.ctx.Err() == nil {
			pl.w.log.Error("creating a project's consumer: its commands wait until it is made", zap.String("project", name), zap.Error(err))
		}
		return
	}
	l, err := pl.w.open(name, cons, pl.count())
	if err != nil {
		pl.w.log.Error("consuming a project's commands: its commands wait until it works", zap.String("project", name), zap.Error(err))
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.closed {
		l.it.Stop()
		return
	}
	pl.loops[name] = l
	pl.wg.Go(func() {
		if err := pl.w.fetch(pl.ctx, pl.workCtx, l, pl.pool); err != nil {
			pl.w.log.Error("a project's fetch loop stopped: making its consumer again", zap.String("project", name), zap.Error(err))
		}
		pl.mu.Lock()
		if pl.loops[name] == l {
			delete(pl.loops, name) // the next sync starts it again
		}
		pl.mu.Unlock()
	})
}

// count is the number of projects served.
func (pl *projectLoops) count() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.want
}

// drain stops every loop's pulling; what they hold goes back.
func (pl *projectLoops) drain() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.closed = true
	for _, l := range pl.loops {
		l.it.Drain()
	}
}

// wait waits for the loops and the follower to end (after drain).
func (pl *projectLoops) wait() { pl.wg.Wait() }
