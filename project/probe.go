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
	at    time.Time
	delay time.Duration
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

// lease is how long a turn holds without renewal: longer than the longest
// wait between two checks and a check itself, so a live prober keeps it.
func (p *Prober) lease() time.Duration {
	_, hi := p.bounds()
	return 2*hi + probeTimeout
}

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

// round checks each project whose turn has come.
func (p *Prober) round(ctx context.Context) {
	now := time.Now()
	lo, hi := p.bounds()
	if p.next == nil {
		p.next = map[string]probeTurn{}
	}
	paused := map[string]bool{}
	for _, st := range p.View.Paused() {
		if st.Health == nil {
			continue
		}
		paused[st.Project] = true
		turn, seen := p.next[st.Project]
		if seen && now.Before(turn.at) {
			continue
		}
		ok, err := p.Store.TakeProbe(ctx, st.Project, p.Me, p.lease())
		if err != nil {
			p.Log.Warn("project check: could not take the turn", zap.String("project", st.Project), zap.Error(err))
		}
		delay := lo
		if seen {
			delay = min(2*turn.delay, hi)
		}
		if ok {
			cctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err = p.Check(cctx, st.Project)
			cancel()
			if err == nil {
				if err := p.Store.ResumeHealth(ctx, st.Project); err != nil {
					p.Log.Warn("project check passed, but the project could not be resumed", zap.String("project", st.Project), zap.Error(err))
				} else {
					p.Log.Debug("project check passed: resuming it", zap.String("project", st.Project), zap.String("was", st.Health.Reason))
					delete(paused, st.Project)
					continue
				}
			} else {
				p.Log.Info("project still paused: its check failed", zap.String("project", st.Project),
					zap.String("cause", string(st.Health.Cause)), zap.Error(err), zap.Duration("next_check", delay))
			}
		}
		jitter := time.Duration(rand.Int64N(int64(delay)/5 + 1))
		p.next[st.Project] = probeTurn{at: now.Add(delay + jitter), delay: delay}
	}
	// A project no longer paused starts from the short delay next time.
	for project := range p.next {
		if !paused[project] {
			delete(p.next, project)
		}
	}
}
