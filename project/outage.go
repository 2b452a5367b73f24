package project

import (
	"sync"
	"sync/atomic"
	"time"
)

// OutageRule says when failures that are no command's own (chat.ErrUnavailable:
// 5xx answers, timeouts, refused or reset connections, DNS failures) mean
// that the API is down for a project rather than that one command is
// unlucky: Commands different commands of the project failed so within
// Window, and no call of the project was answered in between. One command
// failing again and again while its project's other commands are answered
// never meets it, and spends its own retry budget as before.
type OutageRule struct {
	Commands int           // DefaultOutageCommands when zero
	Window   time.Duration // DefaultOutageWindow when zero
}

// The defaults: three commands in a minute. Fewer would pause a busy
// project for two unlucky calls; a longer window would let a quiet project's
// failures from different incidents add up.
const (
	DefaultOutageCommands = 3
	DefaultOutageWindow   = time.Minute
)

func (r OutageRule) withDefaults() OutageRule {
	if r.Commands <= 0 {
		r.Commands = DefaultOutageCommands
	}
	if r.Window <= 0 {
		r.Window = DefaultOutageWindow
	}
	return r
}

// Detector applies an OutageRule to the calls one worker makes. It is safe
// for concurrent use. What it decides is stored once for every replica
// (Store.PauseHealth); it only says when to.
type Detector struct {
	rule OutageRule
	now  func() time.Time

	// anyFailing is len(failing), read without the lock: every answered
	// call asks, and almost always nothing is failing.
	anyFailing atomic.Int64

	mu sync.Mutex
	// failing holds, by project, when each of its commands last failed
	// for a reason not its own since the project's last answered call.
	failing map[string]map[string]time.Time
}

// NewDetector returns a Detector for rule (zero fields take the defaults).
func NewDetector(rule OutageRule) *Detector {
	return &Detector{rule: rule.withDefaults(), now: time.Now, failing: map[string]map[string]time.Time{}}
}

// Answered records that the API answered a call of project's with anything
// but unavailability (a success, or a refusal that is the call's own): the
// API is up for it, so its failures so far were not an outage.
func (d *Detector) Answered(project string) {
	if d.anyFailing.Load() == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.failing, project)
	d.anyFailing.Store(int64(len(d.failing)))
}

// Unavailable records that command's call for project failed for a reason
// not its own, and reports whether the project is now down by the rule.
// When it is, the failures are forgotten: the next verdict needs new ones.
func (d *Detector) Unavailable(project, command string) (down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	f := d.failing[project]
	if f == nil {
		f = map[string]time.Time{}
		d.failing[project] = f
		d.anyFailing.Store(int64(len(d.failing)))
	}
	f[command] = now
	for id, at := range f {
		if now.Sub(at) > d.rule.Window {
			delete(f, id)
		}
	}
	if len(f) < d.rule.Commands {
		return false
	}
	delete(d.failing, project)
	d.anyFailing.Store(int64(len(d.failing)))
	return true
}
