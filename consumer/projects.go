package consumer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chatworker/worker/project"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/execute"
	"go.uber.org/zap"
)

// Projects
//
// A project is one the worker is configured for, by name (contract v2): the
// default one and those of its project list, each with its own site token
// and API key and so its own rate budget. The name is what metrics, logs
// and the shared project states show; never the key, nor the site token. Two
// things are decided per project, before a command takes anything shared:
//
//   - Paused: an answer that blames the worker's configuration (a refused
//     key, or something that is not the Chat API at the base URL) pauses the
//     project. Its commands go back to the stream, unclaimed and uncalled,
//     until a check with backoff (reading the secret files again first)
//     passes. No command is dead-lettered for the worker's configuration.
//   - Rate budget: a command books its call in the project's budget
//     (chat.Reservation) and waits for it outside the API call slots; a wait
//     longer than rateWaitInProcess goes back to the stream for that long,
//     keeping the booking for when it returns. So a project with a backlog
//     holds neither slots nor goroutines while it waits, and other projects'
//     commands are delayed only by their own budget.

// Projects is what the worker asks about a command's project.
// *execute.Executor implements it.
type Projects interface {
	// Project names cmd's project; ok is false for a project outside the
	// allow-list (the command will be refused: nothing to pause or pace).
	Project(cmd actions.Command) (project string, ok bool)
	// Reserve books the project's next API call without waiting.
	Reserve(project string) *chat.Reservation
	// Check re-reads the project's credentials and makes one cheap read.
	Check(ctx context.Context, project string) error
}

var _ Projects = (*execute.Executor)(nil)

// ProjectMetrics records the per-project state. project is a configured
// project's name: the label's values stay bounded.
type ProjectMetrics interface {
	SetProjectPaused(project string, paused bool)
	ObserveProjectRateLimitWait(project string, d time.Duration)
}

// rateWaitInProcess is the longest wait for a project's budget spent in a
// goroutine; a longer one hands the command back to the stream.
const rateWaitInProcess = 100 * time.Millisecond

// Pause checks back off from pauseCheckMin to pauseCheckMax.
const (
	pauseCheckMin = time.Second
	pauseCheckMax = time.Minute
	checkTimeout  = 10 * time.Second
)

type projectState struct {
	cause     string    // the error that paused it; never holds credentials (chat redacts them)
	nextCheck time.Time // when the probe checks again
}

// projectGate holds the pause state of the projects and the reservations of
// commands handed back to wait for their budget.
type projectGate struct {
	src     Projects
	def     string // the default project, whose pause makes the worker unready
	log     *zap.Logger
	metrics ProjectMetrics
	now     func() time.Time

	budgets *budgets

	// store, when set, holds the project states every replica shares;
	// states is this worker's part in them once Start has run (nil before,
	// and without a store: then pauses are this worker's own, in paused).
	store  *project.Store
	outage project.OutageRule
	me     string
	states *project.Keeper

	mu     sync.Mutex
	paused map[string]*projectState
	probes sync.WaitGroup  // the probes and the sweeper
	ctx    context.Context // probes stop with it
	stop   context.CancelFunc
	// checked is closed when the first check of the default project is done.
	checked     chan struct{}
	checkedOnce sync.Once
}

func newProjectGate(src Projects, def string, log *zap.Logger, m ProjectMetrics, holdFor time.Duration) *projectGate {
	g := &projectGate{src: src, def: def, log: log, metrics: m, now: time.Now, paused: map[string]*projectState{},
		ctx: context.Background(), checked: make(chan struct{})}
	g.budgets = &budgets{src: src, metrics: m, now: time.Now, holdFor: holdFor, held: map[uint64]heldReservation{}}
	if m != nil {
		m.SetProjectPaused(def, false) // the series exists before any pause
	}
	return g
}

// Start checks the default project once, then sweeps stale bookings until
// Stop; a pause's probe runs until Stop too. The gate outlives ctx's
// cancellation, which starts a drain, not the end.
func (g *projectGate) Start(ctx context.Context) {
	g.ctx, g.stop = context.WithCancel(context.WithoutCancel(ctx))
	if g.store != nil {
		k, err := project.StartKeeper(ctx, g.store, project.KeeperConfig{
			Me: g.me, Outage: g.outage, Log: g.log, OnChange: g.changed,
			ProbeMin: pauseCheckMin, ProbeMax: pauseCheckMax,
			Check: g.src.Check,
		})
		if err != nil {
			// Without the shared states the worker still pauses on its own.
			g.log.Error("project states unreadable: pauses are this worker's own until a restart", zap.Error(err))
		} else {
			g.states = k
			// The states stored before this worker started (a pause
			// that outlived a restart) are reported as changes are.
			g.report(k.State(g.def))
			for _, st := range k.Paused() {
				if st.Project != g.def {
					g.report(st)
				}
			}
		}
	}
	// One cheap read before the first command: a refused key pauses the
	// default project (and /readyz says so) rather than every command
	// finding out; an API that cannot be reached pauses it for an outage.
	g.checkDefault()
	g.probes.Go(func() { g.budgets.sweepEvery(g.ctx, g.budgets.holdFor) })
}

// Stop ends the probes and the sweeper, and waits for them.
func (g *projectGate) Stop() {
	if g.stop != nil {
		g.stop()
	}
	g.probes.Wait()
	if g.states != nil {
		g.states.Stop()
	}
}

// changed is told of every change of a project's state, by any replica or
// operator: one log line and the metric.
func (g *projectGate) changed(st project.State) {
	if st.Active() {
		g.log.Info("project resumed", zap.String("project", st.Project))
	} else {
		g.log.Warn("project paused: its commands wait in the stream", zap.String("project", st.Project), zap.String("state", st.Name()), zap.String("why", st.String()))
	}
	g.report(st)
}

// report sets the metrics of a project's state.
func (g *projectGate) report(st project.State) {
	if g.metrics != nil {
		g.metrics.SetProjectPaused(st.Project, !st.Active())
	}
	if m, ok := g.metrics.(interface{ SetProjectState(project.State) }); ok {
		m.SetProjectState(st)
	}
}

// project names cmd's project, when the gate knows it.
func (g *projectGate) project(cmd actions.Command) (string, bool) { return g.src.Project(cmd) }

// pausedFor reports whether project is paused and, if so, how long its
// commands should stay away: until just after the next check, spread so
// that a large backlog does not return in one burst.
func (g *projectGate) pausedFor(project string) (time.Duration, bool) {
	if g.states != nil {
		return g.sharedPausedFor(project)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.paused[project]
	if !ok {
		return 0, false
	}
	d := max(st.nextCheck.Sub(g.now()), 0) + pauseCheckMin/2
	return d + time.Duration(rand.Int64N(int64(d))), true
}

// sharedPausedFor is pausedFor from the shared states: the commands of a
// paused project come back after half the time it has been paused, between
// pauseCheckMin and half of pauseCheckMax, spread so that a large backlog
// does not return in one burst. A short pause's commands come back soon
// after it ends; a long one's cost the stream few redeliveries.
func (g *projectGate) sharedPausedFor(project string) (time.Duration, bool) {
	st := g.states.State(project)
	p := st.Pause()
	if p == nil {
		return 0, false
	}
	d := min(max(g.now().Sub(p.Since)/2, pauseCheckMin), pauseCheckMax/2)
	return d + time.Duration(rand.Int64N(int64(d))), true
}

// observe tells the shared states what a call of project's came to, and
// reports whether the call must not count against the command's budget:
// its project is paused for an outage it revealed or that was under way.
func (g *projectGate) observe(ctx context.Context, project, command string, err error) (paused bool) {
	if g.states == nil {
		return false
	}
	switch {
	case err == nil, execute.ConfigFault(err):
		g.states.Answered(project)
		return false
	case errors.Is(err, chat.ErrUnavailable):
		return g.states.Unavailable(ctx, project, command, err)
	case errors.Is(err, context.Canceled), errors.Is(err, errStopping):
		return false
	}
	g.states.Answered(project) // the API answered: the call's own failure
	return false
}

// confirmDown is asked before a command whose budget its project's
// unavailability spent becomes a dead letter: one check of the project; down
// is true when that fails too (the project is then paused for every
// replica), and the command waits instead.
func (g *projectGate) confirmDown(ctx context.Context, project string) (down bool) {
	if g.states == nil {
		return false
	}
	return g.states.Confirm(ctx, project, func(err error) bool { return errors.Is(err, chat.ErrUnavailable) })
}

// pause pauses project because of err (a configuration fault), once: the
// first pause logs, sets the metric and starts the project's probe; with
// shared states, for every replica, whose probe the keeper runs.
func (g *projectGate) pause(project string, err error) {
	if g.states != nil {
		g.states.PauseForConfiguration(g.ctx, project, err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.paused[project]; ok {
		return
	}
	g.paused[project] = &projectState{cause: err.Error(), nextCheck: g.now().Add(pauseCheckMin)}
	g.log.Error("project paused: the Chat API refused the worker's configuration; its commands wait in the stream until a check passes",
		zap.String("project", project), zap.Error(err))
	if g.metrics != nil {
		g.metrics.SetProjectPaused(project, true)
	}
	g.probes.Add(1)
	go g.probe(project)
}

// resume ends project's pause after a passing check.
func (g *projectGate) resume(project string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.paused, project)
	g.log.Info("project resumed: the Chat API accepted its configuration", zap.String("project", project))
	if g.metrics != nil {
		g.metrics.SetProjectPaused(project, false)
	}
}

// probe checks a paused project with backoff until a check passes or the
// gate's context ends.
func (g *projectGate) probe(project string) {
	defer g.probes.Done()
	wait := pauseCheckMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-g.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := g.check(project)
		if err == nil {
			g.resume(project)
			return
		}
		// Anything but a pass keeps the pause: a check that fails for
		// another reason (a network error, a 503) proves nothing.
		wait = min(2*wait, pauseCheckMax)
		g.mu.Lock()
		st := g.paused[project]
		st.nextCheck = g.now().Add(wait)
		if execute.ConfigFault(err) {
			st.cause = err.Error()
		}
		g.mu.Unlock()
		g.log.Debug("paused project still failing its check", zap.String("project", project), zap.Duration("next_check", wait), zap.Error(err))
	}
}

func (g *projectGate) check(project string) error {
	ctx, cancel := context.WithTimeout(g.ctx, checkTimeout)
	defer cancel()
	return g.src.Check(ctx, project)
}

// checkDefault checks the default project once, at start: a configuration
// fault pauses it; another failure is logged (the API may be down for a
// moment; the commands' own retries deal with that).
func (g *projectGate) checkDefault() {
	defer g.checkedOnce.Do(func() { close(g.checked) })
	err := g.check(g.def)
	if g.states != nil && errors.Is(err, chat.ErrUnavailable) {
		// One 5xx or timeout says little: ask once more before pausing.
		select {
		case <-time.After(pauseCheckMin):
			err = g.check(g.def)
		case <-g.ctx.Done():
		}
	}
	switch {
	case err == nil:
		g.log.Info("Chat API credentials of the default project accepted")
	case execute.ConfigFault(err):
		g.pause(g.def, err)
	case g.states != nil && errors.Is(err, chat.ErrUnavailable):
		g.log.Error("the Chat API cannot be reached for the default project: pausing it until a check passes", zap.Error(err))
		g.states.PauseForOutage(g.ctx, g.def, err)
	default:
		g.log.Warn("checking the default project's credentials failed; commands will retry as usual", zap.Error(err))
	}
}

// notReady says why the worker is not ready as far as projects go: the
// first check of the default project is not done, or the default project is
// paused ("" when neither).
func (g *projectGate) notReady() string {
	select {
	case <-g.checked:
	default:
		return "checking the Chat API credentials of the default project"
	}
	if g.states != nil {
		if st := g.states.State(g.def); !st.Active() {
			return "the default project is " + st.String()
		}
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.paused[g.def]; ok {
		return "the default project is paused: the Chat API refused the worker's configuration (" + st.cause + "); fix the API key or --chat-api-url (a rotated key file is read again at each check)"
	}
	return ""
}

// budget waits for the project's rate budget for the command at the stream
// sequence seq (see budgets.budget).
func (g *projectGate) budget(ctx context.Context, project string, seq uint64) (*chat.Reservation, error) {
	return g.budgets.budget(ctx, project, seq)
}

// settings are the defaults of the project named name, as the shared
// states hold them (none without them).
func (g *projectGate) settings(name string) project.Settings {
	if g.states == nil {
		return project.Settings{Project: name}
	}
	return g.states.Settings(name)
}
