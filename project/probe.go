package project

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// Prober checks the projects that the workers hold paused (for their
// configuration or an outage) and resumes each as soon as a check passes.
// One replica checks a project at a time: the one whose turn the bucket
// records (Store.TakeProbe); when it stops renewing its turn (it crashed or
// lost NATS), another takes over. An operator's pause is never probed.
type Prober struct {
	Store *Store
	View  *View
	// Me names this worker in the bucket (host/pid).
	Me string
	// Check makes one cheap call for project; nil means the API answered
	// and accepted the project's configuration.
	Check func(ctx context.Context, project string) error
	// Min and Max bound the backoff between one project's checks (1 s and
	// 1 min when zero).
	Min, Max time.Duration
	Log      *zap.Logger

	next map[string]probeTurn // by project; Run's goroutine alone uses it
}

type probeTurn struct {
	at      time.Time     // when the next check is due
	delay   time.Duration // the last wait between checks
	renewed time.Time     // when this worker last renewed its turn
}

const probeTimeout = 10 * time.Second

func (p *Prober) bounds() (lo, hi time.Duration) {
	lo, hi = p.Min, p.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = max(lo, time.Minute)
	}
	return lo, hi
}

// probeLease is how long a prober's turn holds without renewal. The holder
// renews it every third of that, whatever its checks' backoff, so a replica
// that crashed or lost NATS hands the probing of its paused projects to
// another within about this long.
const probeLease = 15 * time.Second

func (p *Prober) lease() time.Duration { return probeLease }

// Run checks paused projects until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	lo, _ := p.bounds()
	tick := time.NewTicker(lo / 2)
	defer tick.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round renews this worker's turns, takes over ended ones, and checks each
// project whose check is due.
func (p *Prober) round(ctx context.Context) {
	now := time.Now()
	lo, hi := p.bounds()
	if p.next == nil {
		p.next = map[string]probeTurn{}
	}
	paused := map[string]bool{}
	for _, st := range p.View.Paused() {
		h := st.Health
		if h == nil {
			continue
		}
		paused[st.Project] = true
		turn, seen := p.next[st.Project]
		mine := h.Prober == p.Me && now.Before(h.ProbeUntil)
		ended := !now.Before(h.ProbeUntil)
		due := !seen || !now.Before(turn.at)
		renew := mine && now.Sub(turn.renewed) > probeLease/3
		if !(due && (mine || ended)) && !renew {
			continue
		}
		ok, err := p.Store.TakeProbe(ctx, st.Project, p.Me, probeLease)
		if err != nil {
			p.Log.Warn("project check: could not take the turn", zap.String("project", st.Project), zap.Error(err))
		}
		if ok {
			turn.renewed = now
		}
		if !ok || !due {
			p.next[st.Project] = turn
			continue
		}
		delay := lo
		if seen && turn.delay > 0 {
			delay = min(2*turn.delay, hi)
		}
		cctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err = p.Check(cctx, st.Project)
		cancel()
		if err == nil {
			if err := p.Store.ResumeHealth(ctx, st.Project); err != nil {
				p.Log.Warn("project check passed, but the project could not be resumed", zap.String("project", st.Project), zap.Error(err))
			} else {
				p.Log.Debug("project check passed: resuming it", zap.String("project", st.Project), zap.String("was", h.Reason))
				delete(p.next, st.Project)
				delete(paused, st.Project)
				continue
			}
		} else {
			p.Log.Info("project still paused: its check failed", zap.String("project", st.Project),
				zap.String("cause", string(h.Cause)), zap.Error(err), zap.Duration("next_check", delay))
		}
		jitter := time.Duration(rand.Int64N(int64(delay)/5 + 1))
		turn.at, turn.delay = now.Add(delay+jitter), delay
		p.next[st.Project] = turn
	}
	// A project no longer paused starts from the short delay next time.
	for project := range p.next {
		if !paused[project] {
			delete(p.next, project)
		}
	}
}
