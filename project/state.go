package project

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Cause says why a project is paused.
type Cause string

// The causes of a pause. An operator's pause is one key of the bucket and
// the worker's own (configuration or outage) another, so neither can undo
// the other: a probe that succeeds ends an outage, never an operator's pause.
const (
	// CauseOperator: an operator paused the project (worker projects pause).
	CauseOperator Cause = "operator"
	// CauseConfiguration: the API blamed the worker's configuration for the
	// project (a refused key, or no Chat API at the base URL).
	CauseConfiguration Cause = "configuration"
	// CauseOutage: the API, or the way to it, failed for several of the
	// project's commands at once (5xx, timeouts, refused connections).
	CauseOutage Cause = "outage"
)

func (c Cause) valid() bool {
	switch c {
	case CauseOperator, CauseConfiguration, CauseOutage:
		return true
	}
	return false
}

// Pause is one reason a project's commands wait.
type Pause struct {
	Cause Cause `json:"cause"`
	// Reason is said to operators and apps: an operator's words, or the
	// error that paused the project (never holding credentials).
	Reason string `json:"reason"`
	// By is who paused it: the operator's name, or the worker (host/pid)
	// that saw the failures.
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since"`
	// Prober is the worker that checks the project on a backoff until it
	// answers, and ProbeUntil when its turn ends if it stops renewing it
	// (crashed, partitioned): another replica then takes the probe over.
	// Empty for an operator's pause, which only an operator ends.
	Prober     string    `json:"prober,omitempty"`
	ProbeUntil time.Time `json:"probe_until,omitzero"`
}

// Limits on what a pause stores, so that an operator's paste or a long API
// error cannot bloat every replica's view.
const (
	maxReason = 500
	maxBy     = 128
)

func (p Pause) validate() error {
	switch {
	case !p.Cause.valid():
		return fmt.Errorf("project: unknown pause cause %q", p.Cause)
	case p.Reason == "":
		return errors.New("project: a pause needs a reason")
	case !utf8.ValidString(p.Reason) || !utf8.ValidString(p.By):
		return errors.New("project: reason and by must be UTF-8 text")
	case len(p.By) > maxBy:
		return fmt.Errorf("project: by is %d bytes, at most %d", len(p.By), maxBy)
	}
	return nil
}

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// State is what is true of one project now. The zero value of a project is
// active.
type State struct {
	Project string `json:"project"`
	// Operator is set while an operator's pause holds.
	Operator *Pause `json:"operator,omitempty"`
	// Health is set while the workers hold the project paused for its
	// configuration or an outage.
	Health *Pause `json:"health,omitempty"`
}

// Active reports whether the project's commands may run.
func (s State) Active() bool { return s.Operator == nil && s.Health == nil }

// Pause is the pause that explains the wait, the operator's first; nil when
// the project is active.
func (s State) Pause() *Pause {
	if s.Operator != nil {
		return s.Operator
	}
	return s.Health
}

// Name is the state in one word, as metrics, `worker projects ls` and
// `worker status` say it: active, or paused-operator, paused-configuration,
// paused-outage.
func (s State) Name() string {
	p := s.Pause()
	if p == nil {
		return "active"
	}
	return "paused-" + string(p.Cause)
}

// States lists every state Name can return, for metrics that must exist at
// zero before the first change.
var States = []string{"active", "paused-" + string(CauseOperator), "paused-" + string(CauseConfiguration), "paused-" + string(CauseOutage)}

// String is the state as a sentence for a person: "active", or
// "paused by an operator since 2026-12-06T05:00:00Z: provider incident (by alice)".
func (s State) String() string {
	p := s.Pause()
	if p == nil {
		return "active"
	}
	var why string
	switch p.Cause {
	case CauseOperator:
		why = "paused by an operator"
	case CauseConfiguration:
		why = "paused for its configuration"
	case CauseOutage:
		why = "paused for an outage of the Chat API"
	}
	out := fmt.Sprintf("%s since %s: %s", why, p.Since.UTC().Format(time.RFC3339), p.Reason)
	if p.By != "" {
		out += " (by " + p.By + ")"
	}
	return out
}
