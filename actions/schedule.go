package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Scheduled commands use JetStream's message schedules (nats-server 2.12
// and later). A schedule is a message on
// <prefix>.schedules.<type>.<chat token>.<id token> in the commands stream,
// with the command as its body and the headers below; at its time the
// server publishes the body to the command's subject in the same stream
// and removes the schedule. docs/schedules.md says why it is built so.
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

// Pending is a schedule that has not fired.
type Pending struct {
	ID     string    `json:"id"`
	Type   Type      `json:"type"`
	ChatID string    `json:"chat_id"`
	At     time.Time `json:"at"`
	// NotAfter is the command's deadline, when it has one.
	NotAfter time.Time `json:"not_after,omitzero"`
	Subject  string    `json:"subject"`
	Seq      uint64    `json:"stream_seq"`
	// Problem says why the schedule's body or header could not be read
	// (published by hand, say); the fields above then come from its subject.
	Problem string `json:"problem,omitempty"`
}

// ScheduleAt stores c in NATS to be published to its command subject at
// at, and returns the pending schedule. A time within a second is rounded
// up to the next whole second (the server's schedules are in seconds), so a
// command never runs before at. A time already past fires at once.
//
// Scheduling the same id again for the same type and chat replaces its
// pending schedule (a new time, say): the server keeps one schedule per
// subject. A command that runs twice anyway (scheduled again after it
// fired) is a duplicate to the worker's idempotency store, not a second
// API call.
func ScheduleAt(ctx context.Context, js jetstream.JetStream, c Commander, at time.Time, s Subjects) (Pending, error) {
	cmd := c.Command()
	if cmd.ID == "" {
		cmd.ID = contract.NewID()
	}
	if err := cmd.Validate(); err != nil {
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
	data, err := json.Marshal(cmd)
	if err != nil {
		return Pending{ID: cmd.ID}, fmt.Errorf("encode command: %w", err)
	}
	p := Pending{ID: cmd.ID, Type: cmd.Type, ChatID: cmd.ChatID, At: at.UTC(), NotAfter: cmd.NotAfter, Subject: s.Schedule(cmd.Type, cmd.ChatID, cmd.ID)}
	// No Nats-Msg-Id: the subject already makes a repeated publish replace,
	// not add, and an id would make the stream drop a schedule set again
	// within its duplicate window (after a cancel, or to move the time).
	// The server copies the schedule's headers onto the command it fires,
	// traceparent included: the command runs in the caller's trace.
	msg := &nats.Msg{Subject: p.Subject, Data: data, Header: tracecontext.Inject(ctx, nats.Header{HeaderTTL: []string{"never"}})}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(s.Command(cmd.Type, cmd.ChatID)))
	if err != nil {
		if errors.Is(err, jetstream.ErrMessageSchedulesDisabled) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			err = fmt.Errorf("%w (the commands stream must capture %s and allow message schedules and message TTLs: run `worker provision` against nats-server 2.12 or later)", err, s.SchedulesFilter())
		}
		return p, fmt.Errorf("schedule %s command %s: %w", cmd.Type, cmd.ID, err)
	}
	p.Seq = ack.Sequence
	return p, nil
}

// ListSchedules returns the pending schedules, oldest first.
func ListSchedules(ctx context.Context, js jetstream.JetStream, s Subjects) ([]Pending, error) {
	return findSchedules(ctx, js, s, s.SchedulesFilter())
}

// CancelSchedule removes the pending schedules of the command id before they
// fire, so the command never runs, and returns them. It returns an error
// wrapping ErrNoSchedule when there is none (unknown id, already fired or
// cancelled), and ErrTooLate, cancelling nothing, when one is due within
// CancelMargin.
func CancelSchedule(ctx context.Context, js jetstream.JetStream, s Subjects, id string) ([]Pending, error) {
	if id == "" || len(id) > contract.MaxIDBytes {
		return nil, contract.Invalidf("a command id has 1 to %d bytes", contract.MaxIDBytes)
	}
	stream, err := schedulesStream(ctx, js, s)
	if err != nil {
		return nil, err
	}
	found, err := scan(ctx, stream, s, s.ScheduleIDFilter(id))
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w has the id %q: it is unknown, already fired, or was cancelled", ErrNoSchedule, id)
	}
	now := time.Now()
	for _, p := range found {
		if p.At.Sub(now) < CancelMargin {
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
		out = append(out, readPending(s, m))
		seq = m.Sequence + 1
	}
}

func readPending(s Subjects, m *jetstream.RawStreamMsg) Pending {
	p := Pending{Subject: m.Subject, Seq: m.Sequence}
	// The subject names type, chat and id even when the body is unreadable.
	rest := strings.TrimPrefix(m.Subject, strings.TrimSuffix(s.SchedulesFilter(), ">"))
	if parts := strings.Split(rest, "."); len(parts) == 3 {
		p.Type = Type(parts[0])
		p.ChatID, _ = contract.ParseToken(parts[1])
		p.ID, _ = contract.ParseToken(parts[2])
	}
	var problems []string
	if cmd, err := contract.DecodeBody(m.Data); err != nil {
		problems = append(problems, "body: "+err.Error())
	} else {
		p.ID, p.Type, p.ChatID, p.NotAfter = cmd.ID, cmd.Type, cmd.ChatID, cmd.NotAfter
	}
	when, ok := strings.CutPrefix(m.Header.Get(HeaderSchedule), "@at ")
	at, err := time.Parse(time.RFC3339, when)
	if !ok || err != nil {
		problems = append(problems, fmt.Sprintf("%s header %q is not \"@at <RFC 3339 time>\"", HeaderSchedule, contract.Clip(m.Header.Get(HeaderSchedule))))
	} else {
		p.At = at.UTC()
	}
	p.Problem = strings.Join(problems, "; ")
	return p
}
