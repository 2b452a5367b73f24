package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Scheduled commands use JetStream's message schedules (nats-server 2.12
// and later). A schedule is a message on
// <prefix>.schedules.<type>.<chat token>.<id token> (contract v2:
// <prefix>.schedules.<project>.<type>.<chat token>.<id token>) in the
// commands stream, with the command as its body and the headers below; at
// its time the server publishes the body to the command's subject of the
// same version and project in the same stream and removes the schedule.
// docs/schedules.md says why it is built so.
const (
	// HeaderSchedule holds "@at <RFC 3339 time>", in whole seconds.
	HeaderSchedule = jetstream.ScheduleHeader // Nats-Schedule
	// HeaderScheduleTarget is the subject the command is published to.
	HeaderScheduleTarget = jetstream.ScheduleTargetHeader // Nats-Schedule-Target
	// HeaderTTL is set to "never" on a schedule, so the commands stream's
	// MaxAge does not remove a schedule set further ahead than it. The
	// server strips it from the command it publishes.
	HeaderTTL = jetstream.MsgTTLHeader // Nats-TTL
	// HeaderScheduler is set by the server on a command a schedule
	// published: the schedule's subject.
	HeaderScheduler = jetstream.SchedulerHeader // Nats-Scheduler
)

// CancelMargin is how close to its time a schedule can no longer be
// cancelled. The server takes a due schedule out of its timer and publishes
// the command a moment later; a removal in between would report success
// for a command that still runs. Two seconds also cover a modest clock
// difference between the canceller and the server.
const CancelMargin = 2 * time.Second

// ErrNoSchedule: no pending schedule has the id: it never existed, already
// fired, or was cancelled.
var ErrNoSchedule = errors.New("no pending schedule")

// ErrTooLate: the schedule is due within CancelMargin (or overdue), so a
// cancellation could not be sure to stop it.
var ErrTooLate = errors.New("too close to its time to cancel")

// Pending is a schedule that has not fired (or, recurring, not ended).
type Pending struct {
	ID     string `json:"id"`
	Type   Type   `json:"type"`
	ChatID string `json:"chat_id"`
	// Project is the project its subject names (contract v2); empty on a
	// v1 subject.
	Project string `json:"project,omitempty"`
	// At is when it fires, or fires next when it recurs.
	At time.Time `json:"at"`
	// NotAfter is the command's deadline, when it has one.
	NotAfter time.Time `json:"not_after,omitzero"`
	// Every, or Cron read in TZ, is how a recurring schedule repeats.
	Every string `json:"every,omitempty"`
	Cron  string `json:"cron,omitempty"`
	TZ    string `json:"tz,omitempty"`
	// DebounceKey names a debounced command: a newer one with the key (and
	// the same type and chat) replaces it.
	DebounceKey string `json:"debounce_key,omitempty"`
	Subject     string `json:"subject"`
	Seq         uint64 `json:"stream_seq"`
	// Problem says why the schedule's body or header could not be read
	// (published by hand, say); the fields above then come from its subject.
	Problem string `json:"problem,omitempty"`

	hash string // of the body, to compare a command scheduled again
}

// Recurring reports whether p repeats.
func (p Pending) Recurring() bool { return p.Every != "" || p.Cron != "" }

// Recurrence is contract.Recurrence.
type Recurrence = contract.Recurrence

// ScheduleAt stores c in NATS to be published to its command subject at
// at, and returns the pending schedule. A time within a second is rounded
// up to the next whole second (the server's schedules are in seconds), so a
// command never runs before at. A time already past fires at once; a
// deadline (NotAfter) already past is refused, since the command could only
// expire.
//
// Scheduling the same command again (same id, type, chat and body) moves
// its pending schedule to the new time: the server keeps one schedule per
// subject. Scheduling the id again with a different body is refused with an
// error wrapping ErrIDReused, as Publish refuses it, unless WithReplace is
// given; so is an id the worker already took with a different body. A
// command that runs twice anyway (scheduled again after it fired) is a
// duplicate to the worker's idempotency store, not a second API call.
func ScheduleAt(ctx context.Context, js jetstream.JetStream, c Commander, at time.Time, s Subjects, opts ...Option) (Pending, error) {
	o := newOptions(opts)
	cmd, err := scheduled(c)
	if err != nil {
		return Pending{ID: cmd.ID}, err
	}
	if at.IsZero() {
		return Pending{ID: cmd.ID}, contract.Invalidf("a schedule needs a time")
	}
	if r := at.Truncate(time.Second); r.Before(at) {
		at = r.Add(time.Second)
	}
	if !cmd.NotAfter.IsZero() && !at.Before(cmd.NotAfter) {
		return Pending{ID: cmd.ID}, contract.Invalidf("the schedule time %s is not before the command's not_after %s: it would expire without running",
			at.UTC().Format(time.RFC3339), cmd.NotAfter.Format(time.RFC3339Nano))
	}
	p := Pending{ID: cmd.ID, Type: cmd.Type, ChatID: cmd.ChatID, Project: s.Project, At: at.UTC(), NotAfter: cmd.NotAfter, Subject: s.Schedule(cmd.Type, cmd.ChatID, cmd.ID)}
	return p, store(ctx, js, cmd, &p, s, o, nil, jetstream.WithScheduleAt(at))
}

// ScheduleRecurring stores c in NATS to be published at every firing of r
// until it is cancelled (CancelSchedule), and returns the schedule with its
// first firing. Each firing is its own command: the worker gives it the id
// contract.FiringID(id, due time), so the idempotency store runs every
// firing once. The id is therefore at most contract.MaxScheduleIDBytes, and
// the command takes no NotAfter (every firing would share it). Scheduling
// an id again is treated as ScheduleAt treats it.
func ScheduleRecurring(ctx context.Context, js jetstream.JetStream, c Commander, r Recurrence, s Subjects, opts ...Option) (Pending, error) {
	o := newOptions(opts)
	cmd, err := scheduled(c)
	if err != nil {
		return Pending{ID: cmd.ID}, err
	}
	switch {
	case len(cmd.ID) > contract.MaxScheduleIDBytes:
		return Pending{ID: cmd.ID}, contract.Invalidf("the id of a recurring schedule is %d bytes; the limit is %d, so that each firing's id (id@time) stays within %d", len(cmd.ID), contract.MaxScheduleIDBytes, contract.MaxIDBytes)
	case !cmd.NotAfter.IsZero():
		return Pending{ID: cmd.ID}, contract.Invalidf("a recurring command takes no not_after: every firing would carry the same deadline")
	}
	if err := r.Validate(); err != nil {
		return Pending{ID: cmd.ID}, err
	}
	now := time.Now()
	p := Pending{ID: cmd.ID, Type: cmd.Type, ChatID: cmd.ChatID, Project: s.Project, Cron: r.Cron, TZ: r.TZ, Subject: s.Schedule(cmd.Type, cmd.ChatID, cmd.ID)}
	pub := []jetstream.PublishOpt{jetstream.WithScheduleCron(r.Pattern())}
	if r.Every != 0 {
		p.Every, p.At = r.Every.String(), r.NextEvery(now, now)
	} else {
		p.At = r.Next(now).UTC()
	}
	if r.TZ != "" {
		pub = append(pub, jetstream.WithScheduleTimeZone(r.TZ))
	}
	// The worker reads the firing's due time from these: NATS strips
	// Nats-Schedule* from what it fires (contract.Firing).
	h := nats.Header{contract.HeaderRecurrence: []string{r.Pattern()}}
	if r.TZ != "" {
		h.Set(contract.HeaderRecurrenceTZ, r.TZ)
	}
	return p, store(ctx, js, cmd, &p, s, o, h, pub...)
}

// scheduled is c with an id, validated.
func scheduled(c Commander) (Command, error) {
	cmd := c.Command()
	if cmd.ID == "" {
		cmd.ID = contract.NewID()
	}
	if err := cmd.Validate(); err != nil {
		return cmd, err
	}
	if !cmd.NotAfter.IsZero() && cmd.NotAfter.Before(time.Now()) {
		return cmd, contract.Invalidf("the command's not_after %s has passed: it would expire without running", cmd.NotAfter.Format(time.RFC3339Nano))
	}
	return cmd, nil
}

// store publishes the schedule p of cmd, after refusing an id already
// scheduled or taken with a different body; with WithReplace it then
// removes the schedules the id had under other subjects.
func store(ctx context.Context, js jetstream.JetStream, cmd Command, p *Pending, s Subjects, o options, h nats.Header, pub ...jetstream.PublishOpt) error {
	others, err := sameID(ctx, js, cmd, p, s, o)
	if err != nil {
		return err
	}
	if err := publishSchedule(ctx, js, cmd, p, s, h, pub...); err != nil {
		return err
	}
	for _, old := range others {
		if err := old.stream.DeleteMsg(ctx, old.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("scheduled %s, but removing the schedule it replaces (%s, stream sequence %d) failed: %w; cancel that one with worker cancel", p.Subject, old.Subject, old.Seq, err)
		}
	}
	return nil
}

func publishSchedule(ctx context.Context, js jetstream.JetStream, cmd Command, p *Pending, s Subjects, h nats.Header, pub ...jetstream.PublishOpt) error {
	data, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	if h == nil {
		h = nats.Header{}
	}
	h.Set(HeaderTTL, "never")
	// No Nats-Msg-Id: the subject already makes a repeated publish replace,
	// not add, and an id would make the stream drop a schedule set again
	// within its duplicate window (after a cancel, or to move the time).
	// The server copies the schedule's headers onto the command it fires,
	// traceparent included: the command runs in the caller's trace.
	msg := &nats.Msg{Subject: p.Subject, Data: data, Header: tracecontext.Inject(ctx, h)}
	ack, err := js.PublishMsg(ctx, msg, append(pub, jetstream.WithScheduleTarget(s.Command(cmd.Type, cmd.ChatID)))...)
	if err != nil {
		if errors.Is(err, jetstream.ErrMessageSchedulesDisabled) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			err = fmt.Errorf("%w (the commands stream must capture %s and allow message schedules and message TTLs: run `worker provision` against nats-server 2.12 or later)", err, s.SchedulesFilter())
		}
		return fmt.Errorf("schedule %s command %s: %w", cmd.Type, cmd.ID, err)
	}
	p.Seq = ack.Sequence
	return nil
}

// ScheduleConflictError: the id is already scheduled, or was taken by the
// worker, with a different body. errors.Is(err, ErrIDReused) is true.
type ScheduleConflictError struct {
	ID string
	// Scheduled is the pending schedule with the id; nil when the worker
	// already took a command with the id (Replaceable is then false).
	Scheduled   *Pending
	Replaceable bool
}

func (e *ScheduleConflictError) Error() string {
	if e.Scheduled == nil {
		return fmt.Sprintf("command id %q was already taken by the worker with a different body: scheduled again it would be a conflict dead letter, so it was not scheduled: use a new id", e.ID)
	}
	p := e.Scheduled
	return fmt.Sprintf("command id %q is already scheduled with a different body (%s for chat %q, due %s), so this one was not scheduled: use a new id, or replace the pending one (--replace, actions.WithReplace)",
		e.ID, p.Type, p.ChatID, p.At.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrIDReused) true.
func (e *ScheduleConflictError) Is(target error) bool { return target == ErrIDReused }

type storedPending struct {
	Pending
	stream jetstream.Stream
}

// sameID finds the schedules with cmd's id. It refuses one with a different
// body (unless o.replace) and an idempotency record with a different hash,
// and returns those WithReplace must remove (on other subjects: the one on
// p's subject is replaced by the publish). The checks read only what an
// app may read; when they cannot read (permissions, say) the schedule is
// stored as before they existed.
func sameID(ctx context.Context, js jetstream.JetStream, cmd Command, p *Pending, s Subjects, o options) ([]storedPending, error) {
	want := cmd.Hash()
	if !p.Recurring() {
		if rec, err := lookupRecord(ctx, js, o.bucket, cmd.ID); err == nil && rec != nil && rec.Hash != want {
			return nil, &ScheduleConflictError{ID: cmd.ID}
		}
	}
	stream, err := js.Stream(ctx, o.commands)
	if err != nil {
		return nil, nil
	}
	found, err := scan(ctx, stream, s, s.ScheduleIDFilter(cmd.ID))
	if err != nil {
		return nil, nil
	}
	var others []storedPending
	for _, old := range found {
		if old.Subject == p.Subject && old.hash == want {
			continue // the same command: a new time
		}
		if !o.replace {
			return nil, &ScheduleConflictError{ID: cmd.ID, Scheduled: &old, Replaceable: true}
		}
		if old.Subject != p.Subject {
			others = append(others, storedPending{old, stream})
		}
	}
	return others, nil
}

// MaxDebounceKeyBytes bounds a debounce key, as MaxIDBytes bounds an id.
const MaxDebounceKeyBytes = contract.MaxIDBytes

// ScheduleDebounced stores c to be published after delay, replacing the
// command pending under the same key (for the same type and chat), so that
// of a burst only the last is sent, delay after the burst ends. It returns
// the pending schedule.
//
// A deadline bounds how long a burst can put the command off: the earliest
// NotAfter among the pending command and c is kept, and the command fires no
// later than a second before it. So with delay 5m and a NotAfter 30 minutes
// after the first event, a burst that never pauses is sent within 30
// minutes of its start.
func ScheduleDebounced(ctx context.Context, js jetstream.JetStream, c Commander, key string, delay time.Duration, s Subjects, opts ...Option) (Pending, error) {
	o := newOptions(opts)
	cmd, err := scheduled(c)
	if err != nil {
		return Pending{ID: cmd.ID}, err
	}
	switch {
	case key == "" || len(key) > MaxDebounceKeyBytes || !utf8.ValidString(key):
		return Pending{ID: cmd.ID}, contract.Invalidf("a debounce key has 1 to %d bytes of UTF-8", MaxDebounceKeyBytes)
	case delay <= 0:
		return Pending{ID: cmd.ID}, contract.Invalidf("a debounced command needs a positive delay")
	}
	stream, err := js.Stream(ctx, o.commands)
	if err != nil {
		return Pending{ID: cmd.ID}, fmt.Errorf("debounce %s command %s: find the commands stream %s: %w", cmd.Type, cmd.ID, o.commands, err)
	}
	subject := s.Debounce(cmd.Type, cmd.ChatID, key)
	// The read and the publish race with other publishers of the key: the
	// publish expects the pending one it read, and reads again if it lost.
	const tries = 5
	for try := 1; ; try++ {
		var expect uint64
		next := cmd
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case err == nil:
			expect = m.Sequence
			if old := readPending(s, m, time.Now()); !old.NotAfter.IsZero() && (next.NotAfter.IsZero() || old.NotAfter.Before(next.NotAfter)) {
				next.NotAfter = old.NotAfter
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return Pending{ID: cmd.ID}, fmt.Errorf("debounce %s command %s: read the pending one: %w", cmd.Type, cmd.ID, err)
		}
		now := time.Now()
		at := now.Add(delay)
		if r := at.Truncate(time.Second); r.Before(at) {
			at = r.Add(time.Second)
		}
		if !next.NotAfter.IsZero() {
			if !next.NotAfter.After(now) {
				return Pending{ID: cmd.ID}, contract.Invalidf("the deadline %s of the debounced commands under key %q has passed: this one would expire without running", next.NotAfter.Format(time.RFC3339Nano), key)
			}
			if latest := next.NotAfter.Add(-time.Second).Truncate(time.Second); latest.Before(at) {
				at = latest // a time past fires at once
			}
		}
		p := Pending{ID: next.ID, Type: next.Type, ChatID: next.ChatID, Project: s.Project, At: at.UTC(), NotAfter: next.NotAfter, DebounceKey: key, Subject: subject}
		err = publishSchedule(ctx, js, next, &p, s, nil, jetstream.WithScheduleAt(at), jetstream.WithExpectLastSequencePerSubject(expect))
		if !wrongLastSequence(err) || try == tries {
			return p, err
		}
	}
}

func wrongLastSequence(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ListSchedules returns the pending schedules, oldest first.
func ListSchedules(ctx context.Context, js jetstream.JetStream, s Subjects) ([]Pending, error) {
	return findSchedules(ctx, js, s, s.SchedulesFilter())
}

// pendingOf finds the pending schedules of the command id, in the stream
// that holds them; none is an error wrapping ErrNoSchedule.
func pendingOf(ctx context.Context, js jetstream.JetStream, s Subjects, id string) (jetstream.Stream, []Pending, error) {
	if id == "" || len(id) > contract.MaxIDBytes {
		return nil, nil, contract.Invalidf("a command id has 1 to %d bytes", contract.MaxIDBytes)
	}
	stream, err := schedulesStream(ctx, js, s)
	if err != nil {
		return nil, nil, err
	}
	found, err := schedulesOf(ctx, stream, s, id)
	if err != nil {
		return nil, nil, err
	}
	if len(found) == 0 {
		return nil, nil, fmt.Errorf("%w has the id %q: it is unknown, already fired, or was cancelled", ErrNoSchedule, id)
	}
	return stream, found, nil
}

// CancelSchedule removes the pending schedules of the command id (one-shot,
// recurring or debounced) before they fire, so the command never runs, or a
// recurring one runs no more, and returns them. It returns an error
// wrapping ErrNoSchedule when there is none (unknown id, already fired or
// cancelled), and ErrTooLate, cancelling nothing, when a one-shot one is
// due within CancelMargin. A recurring one is removed however close its
// next firing; that firing may still run.
func CancelSchedule(ctx context.Context, js jetstream.JetStream, s Subjects, id string) ([]Pending, error) {
	stream, found, err := pendingOf(ctx, js, s, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, p := range found {
		// A series ends whenever it is cancelled; only its next firing
		// may still run.
		if !p.Recurring() && p.At.Sub(now) < CancelMargin {
			return nil, fmt.Errorf("the %s command %q for chat %q is due at %s: %w (within %s), so it may run",
				p.Type, id, p.ChatID, p.At.Format(time.RFC3339), ErrTooLate, CancelMargin)
		}
	}
	var cancelled []Pending
	for _, p := range found {
		if err := stream.DeleteMsg(ctx, p.Seq); err != nil {
			// A schedule that fired since the scan is gone: say so, unless
			// the failure was NATS's.
			if _, gerr := stream.GetMsg(ctx, p.Seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
				continue
			}
			return cancelled, fmt.Errorf("cancel schedule %s (stream sequence %d): %w", p.Subject, p.Seq, err)
		}
		cancelled = append(cancelled, p)
	}
	if len(cancelled) == 0 {
		return nil, fmt.Errorf("%w has the id %q: it fired or was cancelled a moment ago", ErrNoSchedule, id)
	}
	return cancelled, nil
}

// Ran is a schedule that RunNow ran.
type Ran struct {
	// Pending is the schedule as it was found.
	Pending
	// Command is the id the command was published under: the schedule's,
	// or for a recurring one the firing's, contract.FiringID(id, now).
	Command string `json:"command_id"`
	// Duplicate: the commands stream already held a command with that id,
	// published within its duplicate window, so this copy was dropped and
	// the earlier one is the one that runs.
	Duplicate bool `json:"duplicate,omitempty"`
	// Kept: the schedule is still pending. A recurring one keeps its
	// series; At is its next firing.
	Kept bool `json:"kept,omitempty"`
}

// RunNow publishes the command of each pending schedule of id (one-shot,
// recurring or debounced, as CancelSchedule finds them) to its command
// subject at once, with Nats-Msg-Id set to its id, and returns them. A
// one-shot or debounced schedule is then removed, so the command runs now
// instead of at its time. A recurring one fires one extra firing now, with
// the id contract.FiringID(id, now to the second), and keeps its series:
// its next firing runs as it would have.
//
// Publishing comes before removing, so that a failure between the two
// never loses the command: the schedule is then still pending and fires at
// its time as a second command with the same id, which the worker's
// idempotency store answers with a result of status duplicate, without a
// second API call. The same happens when the server fires a schedule due
// in the moment RunNow runs it.
//
// It returns an error wrapping ErrNoSchedule when id has no pending
// schedule, and refuses, running nothing, when a schedule's body cannot be
// read (Pending.Problem): that command could only be dead-lettered.
func RunNow(ctx context.Context, js jetstream.JetStream, s Subjects, id string) ([]Ran, error) {
	stream, found, err := pendingOf(ctx, js, s, id)
	if err != nil {
		return nil, err
	}
	for _, p := range found {
		if p.Problem != "" {
			return nil, contract.Invalidf("the schedule %s (stream sequence %d) cannot run: %s; cancel it with worker cancel", p.Subject, p.Seq, p.Problem)
		}
	}
	var ran []Ran
	for _, p := range found {
		r, err := runNow(ctx, js, stream, s, p)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // fired or cancelled since the scan
		}
		if err != nil {
			return ran, err
		}
		ran = append(ran, r)
	}
	if len(ran) == 0 {
		return nil, fmt.Errorf("%w has the id %q: it fired or was cancelled a moment ago", ErrNoSchedule, id)
	}
	return ran, nil
}

// runNow publishes the command of the schedule p, then removes a one-shot
// p. It returns ErrMsgNotFound when p is gone before its command was read.
func runNow(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, s Subjects, p Pending) (Ran, error) {
	r := Ran{Pending: p}
	m, err := stream.GetMsg(ctx, p.Seq)
	if err != nil {
		return r, err
	}
	cmd, err := contract.DecodeBody(m.Data)
	if err != nil {
		return r, contract.Invalidf("the schedule %s (stream sequence %d) cannot run: body: %v", p.Subject, p.Seq, err)
	}
	data := m.Data
	if p.Recurring() {
		cmd.ID = contract.FiringID(cmd.ID, time.Now())
		if data, err = json.Marshal(cmd); err != nil {
			return r, fmt.Errorf("encode command: %w", err)
		}
	}
	r.Command = cmd.ID
	// The command continues the caller's trace, or else the scheduler's,
	// as the server's firing would.
	h := nats.Header{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := m.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	// The schedule's own project: s may be every project's (no --project).
	msg := &nats.Msg{Subject: s.For(p.Project).Command(cmd.Type, cmd.ChatID), Data: data, Header: tracecontext.Inject(ctx, h)}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(cmd.ID))
	if err != nil {
		return r, fmt.Errorf("run %s command %s now: publish: %w (the schedule %s is still pending)", cmd.Type, cmd.ID, err, p.Subject)
	}
	r.Duplicate = ack.Duplicate
	if p.Recurring() {
		r.Kept = true
		return r, nil
	}
	if err := stream.DeleteMsg(ctx, p.Seq); err != nil {
		// Gone since (fired, or replaced by a newer debounced command):
		// what is left to run is not this schedule.
		if _, gerr := stream.GetMsg(ctx, p.Seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return r, nil
		}
		return r, fmt.Errorf("ran %s command %s now, but removing its schedule %s (stream sequence %d) failed: %w; at its time it runs again as a duplicate of this one, unless cancelled with worker cancel %s",
			cmd.Type, cmd.ID, p.Subject, p.Seq, err, cmd.ID)
	}
	return r, nil
}

// schedulesOf returns the pending schedules of the command id: under its
// own subject, and debounced under a key (found by their bodies). With
// s.Project set it looks among that project's subjects; without, among the
// v1 subjects and every project's, so that nothing is hidden.
func schedulesOf(ctx context.Context, stream jetstream.Stream, s Subjects, id string) ([]Pending, error) {
	idFilters, debounceFilters := []string{s.ScheduleIDFilter(id)}, []string{s.DebounceFilter()}
	if s.Project == "" {
		// A v2 subject has one token more, for its project.
		every := s.For("*")
		idFilters, debounceFilters = append(idFilters, every.ScheduleIDFilter(id)), append(debounceFilters, every.DebounceFilter())
	}
	var found []Pending
	seen := map[uint64]bool{}
	add := func(p Pending) {
		if !seen[p.Seq] {
			seen[p.Seq] = true
			found = append(found, p)
		}
	}
	for i, filter := range idFilters {
		ps, err := scan(ctx, stream, s, filter)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			// The v2 filter also matches a v1 debounced command whose key
			// reads as the id: that one is found by its body below.
			if i > 0 && p.DebounceKey != "" {
				continue
			}
			add(p)
		}
	}
	for _, filter := range debounceFilters {
		debounced, err := scan(ctx, stream, s, filter)
		if err != nil {
			return nil, err
		}
		for _, p := range debounced {
			if p.ID == id {
				add(p)
			}
		}
	}
	return found, nil
}

func findSchedules(ctx context.Context, js jetstream.JetStream, s Subjects, filter string) ([]Pending, error) {
	stream, err := schedulesStream(ctx, js, s)
	if err != nil {
		return nil, err
	}
	return scan(ctx, stream, s, filter)
}

// schedulesStream finds the stream that holds the schedules (the commands
// stream, under whatever name it was given).
func schedulesStream(ctx context.Context, js jetstream.JetStream, s Subjects) (jetstream.Stream, error) {
	name, err := js.StreamNameBySubject(ctx, s.SchedulesFilter())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("no stream captures %s: run `worker provision` (schedules need nats-server 2.12 or later)", s.SchedulesFilter())
	}
	if err != nil {
		return nil, fmt.Errorf("find the schedules' stream: %w", err)
	}
	return js.Stream(ctx, name)
}

// scan reads every message on filter, one direct get each. A work-queue
// stream refuses the ordered consumer that would stream them.
func scan(ctx context.Context, stream jetstream.Stream, s Subjects, filter string) ([]Pending, error) {
	var out []Pending
	for seq := uint64(1); ; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read schedules: %w", err)
		}
		out = append(out, readPending(s, m, time.Now()))
		seq = m.Sequence + 1
	}
}

func readPending(s Subjects, m *jetstream.RawStreamMsg, now time.Time) Pending {
	p := Pending{Subject: m.Subject, Seq: m.Sequence}
	// The subject names project (v2), type, chat and id (or debounce key)
	// even when the body is unreadable.
	if r, err := s.ParseSchedule(m.Subject); err == nil {
		p.Project, p.Type, p.ID, p.DebounceKey = r.Project, r.Type, r.ID, r.DebounceKey
		p.ChatID, _ = contract.ParseToken(r.Chat)
	}
	var problems []string
	if cmd, err := contract.DecodeBody(m.Data); err != nil {
		problems = append(problems, "body: "+err.Error())
	} else {
		p.ID, p.Type, p.ChatID, p.NotAfter, p.hash = cmd.ID, cmd.Type, cmd.ChatID, cmd.NotAfter, cmd.Hash()
	}
	pattern := m.Header.Get(HeaderSchedule)
	if when, ok := strings.CutPrefix(pattern, "@at "); ok {
		if at, err := time.Parse(time.RFC3339, when); err == nil {
			p.At = at.UTC()
		} else {
			problems = append(problems, fmt.Sprintf("%s header %q is not \"@at <RFC 3339 time>\"", HeaderSchedule, contract.Clip(pattern)))
		}
	} else if r, err := contract.ParseRecurrence(pattern, m.Header.Get(jetstream.ScheduleTimeZoneHeader)); err == nil {
		p.Cron, p.TZ = r.Cron, r.TZ
		if r.Every != 0 {
			p.Every, p.At = r.Every.String(), r.NextEvery(m.Time, now)
		} else {
			p.At = r.Next(now).UTC()
		}
	} else {
		problems = append(problems, fmt.Sprintf("%s header %q is neither \"@at <RFC 3339 time>\" nor a recurrence: %v", HeaderSchedule, contract.Clip(pattern), err))
	}
	p.Problem = strings.Join(problems, "; ")
	return p
}
