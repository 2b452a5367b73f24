package consumer

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/execute"
	"go.uber.org/zap"
)

// Projects
//
// A project is a site token: the worker's default one and those of its
// allow-list, each with its own API key and so its own rate budget. Two
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

// ProjectMetrics records the per-project state. project is "default" for
// the default project, whose site token is a credential (GOSQUARED_SITE_TOKEN)
// and never shown, and otherwise a site token of the allow-list, which
// commands name themselves: the label's values stay bounded.
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

	// holdFor is how long past its booked time a command handed back to
	// wait for its budget keeps its booking (AckWait).
	holdFor time.Duration

	mu     sync.Mutex
	paused map[string]*projectState
	probes sync.WaitGroup  // the probes and the sweeper
	ctx    context.Context // probes stop with it
	stop   context.CancelFunc
	// held are the bookings of commands handed back to wait for their
	// budget, by stream sequence, for when they are delivered again. One
	// delivered to another worker leaves its booking here until it expires.
	held map[uint64]heldReservation
	// checked is closed when the first check of the default project is done.
	checked     chan struct{}
	checkedOnce sync.Once
}

type heldReservation struct {
	r       *chat.Reservation
	expires time.Time
}

func newProjectGate(src Projects, def string, log *zap.Logger, m ProjectMetrics, holdFor time.Duration) *projectGate {
	g := &projectGate{src: src, def: def, log: log, metrics: m, now: time.Now, holdFor: holdFor, paused: map[string]*projectState{},
		held: map[uint64]heldReservation{}, ctx: context.Background(), checked: make(chan struct{})}
	if m != nil {
		m.SetProjectPaused(g.label(def), false) // the series exists before any pause
	}
	return g
}

// Start checks the default project once, then sweeps stale bookings until
// Stop; a pause's probe runs until Stop too. The gate outlives ctx's
// cancellation, which starts a drain, not the end.
func (g *projectGate) Start(ctx context.Context) {
	g.ctx, g.stop = context.WithCancel(context.WithoutCancel(ctx))
	// One cheap read before the first command: a refused key pauses the
	// default project (and /readyz says so) rather than every command
	// finding out.
	g.checkDefault()
	g.probes.Go(func() { g.sweepEvery(g.ctx, g.holdFor) })
}

// Stop ends the probes and the sweeper, and waits for them.
func (g *projectGate) Stop() {
	if g.stop != nil {
		g.stop()
	}
	g.probes.Wait()
}

// project names cmd's project, when the gate knows it.
func (g *projectGate) project(cmd actions.Command) (string, bool) { return g.src.Project(cmd) }

// pausedFor reports whether project is paused and, if so, how long its
// commands should stay away: until just after the next check, spread so
// that a large backlog does not return in one burst.
func (g *projectGate) pausedFor(project string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.paused[project]
	if !ok {
		return 0, false
	}
	d := max(st.nextCheck.Sub(g.now()), 0) + pauseCheckMin/2
	return d + time.Duration(rand.Int64N(int64(d))), true
}

// pause pauses project because of err (a configuration fault), once: the
// first pause logs, sets the metric and starts the project's probe.
func (g *projectGate) pause(project string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.paused[project]; ok {
		return
	}
	g.paused[project] = &projectState{cause: err.Error(), nextCheck: g.now().Add(pauseCheckMin)}
	g.log.Error("project paused: the Chat API refused the worker's configuration; its commands wait in the stream until a check passes",
		zap.String("project", g.label(project)), zap.Error(err))
	if g.metrics != nil {
		g.metrics.SetProjectPaused(g.label(project), true)
	}
	g.probes.Add(1)
	go g.probe(project)
}

// resume ends project's pause after a passing check.
func (g *projectGate) resume(project string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.paused, project)
	g.log.Info("project resumed: the Chat API accepted its configuration", zap.String("project", g.label(project)))
	if g.metrics != nil {
		g.metrics.SetProjectPaused(g.label(project), false)
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
		g.log.Debug("paused project still failing its check", zap.String("project", g.label(project)), zap.Duration("next_check", wait), zap.Error(err))
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
	switch {
	case err == nil:
		g.log.Info("Chat API credentials of the default project accepted")
	case execute.ConfigFault(err):
		g.pause(g.def, err)
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.paused[g.def]; ok {
		return "the default project is paused: the Chat API refused the worker's configuration (" + st.cause + "); fix the API key or --chat-api-url (a rotated key file is read again at each check)"
	}
	return ""
}

// reservation returns the booking a command handed back earlier holds, or
// books a new one.
func (g *projectGate) reservation(project string, seq uint64) *chat.Reservation {
	g.mu.Lock()
	h, ok := g.held[seq]
	delete(g.held, seq)
	g.mu.Unlock()
	if ok {
		return h.r
	}
	return g.src.Reserve(project)
}

// hold keeps r for the command at seq, handed back until r's time.
func (g *projectGate) hold(seq uint64, r *chat.Reservation, ttl time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.held[seq]; ok {
		old.r.Cancel()
	}
	g.held[seq] = heldReservation{r: r, expires: g.now().Add(r.Delay() + ttl)}
}

// sweep cancels bookings whose command did not come back to this worker.
func (g *projectGate) sweep() {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for seq, h := range g.held {
		if now.After(h.expires) {
			h.r.Cancel()
			delete(g.held, seq)
		}
	}
}

func (g *projectGate) sweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sweep()
		}
	}
}

// budget waits for the project's rate budget for the command at the stream
// sequence seq, outside any API call slot. It returns the reservation to
// call with, or, when the wait would be longer than is worth a goroutine, a
// *rateWaitError saying how long to hand the command back for (the booking
// is then held for its return); errStopping when ctx ends first.
func (g *projectGate) budget(ctx context.Context, project string, seq uint64) (*chat.Reservation, error) {
	for {
		r := g.reservation(project, seq)
		wait := r.Delay()
		if wait > rateWaitInProcess {
			if r.Booked() {
				g.hold(seq, r, g.holdFor)
			}
			g.observeWait(project, wait)
			return nil, &rateWaitError{delay: wait}
		}
		if wait > 0 {
			g.observeWait(project, wait)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return nil, errStopping
			}
		}
		if r.Booked() {
			return r, nil
		}
		// The budget was being learned: ask again.
	}
}

func (g *projectGate) observeWait(project string, d time.Duration) {
	if g.metrics != nil {
		g.metrics.ObserveProjectRateLimitWait(g.label(project), d)
	}
}

// label names a project in logs and metrics: the default project's site
// token is a credential.
func (g *projectGate) label(project string) string {
	if project == g.def {
		return "default"
	}
	return project
}
