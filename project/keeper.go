package project

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// Keeper is one replica's part in the project states: it reads them (a
// View), turns what its own calls saw into shared pauses (an OutageRule,
// decided once in the bucket for every replica), and checks the paused
// projects when its turn comes (a Prober). The consume loop asks it before
// each command and tells it what each call came to.
type Keeper struct {
	store  *Store
	view   *View
	rule   *Detector
	me     string
	check  func(ctx context.Context, project string) error
	lease  time.Duration
	log    *zap.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// KeeperConfig is what a Keeper needs besides the store.
type KeeperConfig struct {
	// Me names this worker in the bucket (host/pid).
	Me string
	// Check makes one cheap call for project (re-reading its credentials
	// first): nil when the API answers and accepts them.
	Check func(ctx context.Context, project string) error
	// Outage is the rule that pauses a project for an outage.
	Outage OutageRule
	// ProbeMin and ProbeMax bound the backoff between a paused project's
	// checks (1 s and 1 min when zero).
	ProbeMin, ProbeMax time.Duration
	// OnChange, if not nil, is told of every change of a project's state,
	// from any replica or operator: one log line and a metric each.
	OnChange func(State)
	Log      *zap.Logger
}

// StartKeeper reads every stored state and starts probing. Stop ends it.
func StartKeeper(ctx context.Context, store *Store, cfg KeeperConfig) (*Keeper, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Check == nil {
		return nil, errors.New("project: a keeper needs a Check")
	}
	view, err := store.Watch(ctx, cfg.OnChange)
	if err != nil {
		return nil, err
	}
	p := &Prober{Store: store, View: view, Me: cfg.Me, Check: cfg.Check, Min: cfg.ProbeMin, Max: cfg.ProbeMax, Log: cfg.Log}
	k := &Keeper{store: store, view: view, rule: NewDetector(cfg.Outage), me: cfg.Me, check: cfg.Check, lease: p.lease(), log: cfg.Log, done: make(chan struct{})}
	var run context.Context
	run, k.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(k.done)
		p.Run(run)
	}()
	return k, nil
}

// State is project's state as this replica knows it (no round trip).
func (k *Keeper) State(project string) State { return k.view.State(project) }

// Settings are project's defaults as this replica knows them (no round
// trip).
func (k *Keeper) Settings(project string) Settings { return k.view.Settings(project) }

// Paused lists the paused projects.
func (k *Keeper) Paused() []State { return k.view.Paused() }

// Answered tells the keeper that the API answered a call of project's with
// anything but unavailability.
func (k *Keeper) Answered(project string) { k.rule.Answered(project) }

// Unavailable tells the keeper that command's call for project failed for a
// reason not its own (chat.ErrUnavailable). When that makes the project
// down by the rule, the project is paused for every replica and paused is
// true: the command waits with the others instead of spending its budget.
func (k *Keeper) Unavailable(ctx context.Context, project, command string, cause error) (paused bool) {
	if !k.rule.Unavailable(project, command) {
		return !k.view.State(project).Active()
	}
	return k.pause(ctx, project, CauseOutage, cause)
}

// Confirm decides for a command whose last failures were unavailability and
// whose retry budget is spent whether the project is down: one check of
// the project. When the check fails so too, the project is paused for an
// outage and down is true: the command waits rather than becoming a dead
// letter. When the check passes, the API works for the project and the
// command alone is failing: it is dead-lettered as before.
func (k *Keeper) Confirm(ctx context.Context, project string, isUnavailable func(error) bool) (down bool) {
	cctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := k.check(cctx, project)
	cancel()
	if err == nil || !isUnavailable(err) {
		return false
	}
	return k.pause(ctx, project, CauseOutage, err)
}

// PauseForConfiguration pauses project for every replica because the API
// blamed its configuration (a refused key, no Chat API at the base URL).
func (k *Keeper) PauseForConfiguration(ctx context.Context, project string, cause error) {
	k.pause(ctx, project, CauseConfiguration, cause)
}

// PauseForOutage pauses project for every replica because the API cannot
// be reached for it (at start, before any command could tell).
func (k *Keeper) PauseForOutage(ctx context.Context, project string, cause error) {
	k.pause(ctx, project, CauseOutage, cause)
}

// pause stores the pause; only the first of racing replicas' is kept. A
// pause that cannot be stored (NATS away) still holds the project here by
// reporting true: its commands go back to the stream, and the next failure
// tries again.
func (k *Keeper) pause(ctx context.Context, project string, cause Cause, err error) bool {
	reason := err.Error()
	if _, won, perr := k.store.PauseHealth(ctx, project, cause, reason, k.me, k.lease); perr != nil {
		k.log.Warn("project: could not store a pause; its commands go back to the stream meanwhile",
			zap.String("project", project), zap.String("cause", string(cause)), zap.Error(perr))
	} else if won {
		// Every replica logs the change once it sees it (OnChange); this
		// says which replica decided.
		k.log.Debug("project pause stored", zap.String("project", project), zap.String("cause", string(cause)), zap.String("reason", reason))
	}
	return true
}

// Stop ends probing and the watch.
func (k *Keeper) Stop() {
	k.cancel()
	<-k.done
	k.view.Stop()
}
