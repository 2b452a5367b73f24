package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatworker/worker/project"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

// State is where a command is, as far as the worker's records tell.
type State string

const (
	// StateWaiting: the command is in the commands stream, not yet taken or
	// handed back to wait for a retry.
	StateWaiting State = "waiting"
	// StateRunning: a worker holds it (a live claim on its id).
	StateRunning State = "running"
	// StateSucceeded: it succeeded; its result is in the results stream
	// unless that was purged or has expired.
	StateSucceeded State = "succeeded"
	// StateDeadLettered: it is in the dead-letter stream.
	StateDeadLettered State = "dead-lettered"
	// StateScheduled: it is stored to be published at a later time (see
	// ScheduleAt) and has not been published yet.
	StateScheduled State = "scheduled"
)

// ErrUnknownCommand: nothing is known of the id: never published, or its
// message and records are gone (results are kept 7 days, idempotency
// records 24 hours, by default).
var ErrUnknownCommand = errors.New("no command with this id is known")

// MaxStatusScan bounds how many waiting commands Status reads to find an
// id in the commands stream (one request each; the stream holds only the
// backlog).
const MaxStatusScan = 100_000

// CommandStatus is what Status found.
type CommandStatus struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	// Record is the id's idempotency record, when it has one: attempts,
	// times, and the lease of a running command.
	Record *WorkerRecord `json:"record,omitempty"`
	// Result, for a command that succeeded, when it is still stored.
	Result *Result `json:"result,omitempty"`
	// DeadLetter, for a dead-lettered command.
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`
	// Schedule, for a scheduled command: when it is due.
	Schedule *Pending `json:"schedule,omitempty"`
	// Sequence is the stream sequence of the waiting command, the result,
	// the dead letter or the schedule.
	Sequence uint64 `json:"stream_seq,omitempty"`
	// Project and Paused say why a waiting command waits when its project
	// is paused (by an operator, for its configuration or for an outage of
	// the Chat API): project is the name its subject gives (contract v2),
	// else "default" or the command's site token.
	Project string         `json:"project,omitempty"`
	Paused  *project.Pause `json:"paused,omitempty"`
}

// Status says what became of the command id, from the idempotency record
// and the streams: succeeded (with its result), running, waiting,
// dead-lettered, or scheduled and not yet published. For a moment after a
// result or dead letter is stored (until the worker has recorded the
// success or released its claim), the state is still running. It returns ErrUnknownCommand when nothing is found. It
// reads; it never changes anything, so apps may call it with read access to
// the streams and the bucket.
func Status(ctx context.Context, js jetstream.JetStream, id string, s Subjects, opts ...Option) (CommandStatus, error) {
	o := newOptions(opts)
	if id == "" || len(id) > contract.MaxIDBytes {
		return CommandStatus{}, contract.Invalidf("a command id has 1 to %d bytes", contract.MaxIDBytes)
	}
	// A command can move on while we look (from running to succeeded, out
	// of the stream into the dead letters): look twice before saying that
	// nothing is known.
	var err error
	for range 2 {
		var st CommandStatus
		st, err = status(ctx, js, id, s, o)
		if !errors.Is(err, ErrUnknownCommand) {
			return st, err
		}
	}
	return CommandStatus{ID: id}, err
}

func status(ctx context.Context, js jetstream.JetStream, id string, s Subjects, o options) (CommandStatus, error) {
	st := CommandStatus{ID: id}
	var err error
	if st.Record, err = lookupRecord(ctx, js, o.bucket, id); err != nil {
		return st, err
	}
	if r := st.Record; r != nil && r.State == contract.RecordSucceeded {
		st.State = StateSucceeded
		// The result is stored just after the record completes; start a
		// minute earlier for clocks that disagree.
		since := r.CompletedAt.Add(-time.Minute)
		m, err := findRecord(ctx, js, o.results, s.ResultsFilter(), id, &since, true)
		if err != nil || m == nil {
			return st, err
		}
		st.Sequence, st.Result = m.Sequence, new(Result)
		return st, json.Unmarshal(m.Data, st.Result)
	}
	if r := st.Record; r != nil && r.State == contract.RecordPending && r.Owner != "" && time.Now().Before(r.LeaseExpires) {
		st.State = StateRunning
		return st, nil
	}
	seq, subject, err := findWaiting(ctx, js, o.commands, s.CommandsFilter(), id)
	if err != nil {
		return st, err
	}
	dlqFilter := s.DeadLettersFilter()
	if seq > 0 {
		// The message waiting in the stream is the command, unless it is
		// the very message whose dead letter was just stored: the worker
		// removes it from the stream only after storing its dead letter.
		// Look for that on the chat's own dead-letter subject.
		r, err := s.ParseCommand(subject)
		if err != nil {
			st.State, st.Sequence = StateWaiting, seq
			whyWaiting(ctx, js, s, o.commands, &st)
			return st, nil
		}
		dlqFilter = r.Subjects(s).DeadLetter(r.Type, r.Chat)
	}
	m, err := findRecord(ctx, js, o.deadLetters, dlqFilter, id, nil, false)
	if err != nil {
		return st, err
	}
	if seq > 0 && (m == nil || !deadLetterOf(m, o.commands, seq)) {
		st.State, st.Sequence = StateWaiting, seq
		whyWaiting(ctx, js, s, o.commands, &st)
		return st, nil
	}
	if m != nil {
		st.State, st.Sequence, st.DeadLetter = StateDeadLettered, m.Sequence, new(DeadLetter)
		return st, json.Unmarshal(m.Data, st.DeadLetter)
	}
	// Schedules live in the commands stream, under their own subjects.
	if commands, err := js.Stream(ctx, o.commands); err == nil {
		found, err := schedulesOf(ctx, commands, s, id)
		if err != nil {
			return st, err
		}
		if len(found) > 0 {
			st.State, st.Sequence, st.Schedule = StateScheduled, found[0].Seq, &found[0]
			return st, nil
		}
	}
	return st, fmt.Errorf("command %q: %w (never published, or its message and records have expired)", id, ErrUnknownCommand)
}

// findRecord returns the first (or, when first is false, the last) record
// of id in stream, reading only headers until it finds it.
func findRecord(ctx context.Context, js jetstream.JetStream, stream, filter, id string, since *time.Time, first bool) (*jetstream.RawStreamMsg, error) {
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	info := st.CachedInfo() // js.Stream has just read it
	if info.State.Msgs == 0 {
		return nil, nil
	}
	last := info.State.LastSeq
	// An ordered consumer is ephemeral; the server drops it soon after the
	// last read, so a reader needs no right to delete consumers.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, HeadersOnly: true, InactiveThreshold: inactive}
	if since != nil {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, since
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if ci := cons.CachedInfo(); ci == nil || ci.NumPending == 0 {
		return nil, nil
	}
	var found uint64
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		n := 0
		done := false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			if h := m.Headers().Get(jetstream.MsgIDHeader); recordOf(h, id) || strings.HasPrefix(h, "invalid:") && invalidOf(ctx, st, meta.Sequence.Stream, id) {
				found = meta.Sequence.Stream
				if first {
					done = true
					break
				}
			}
			if meta.NumPending == 0 || meta.Sequence.Stream >= last {
				done = true
				break
			}
		}
		if err := batch.Error(); err != nil && !done && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if done || n == 0 {
			break
		}
	}
	if found == 0 {
		return nil, nil
	}
	m, err := st.GetMsg(ctx, found)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil // deleted meanwhile
	}
	return m, err
}

// invalidOf reports whether the dead letter at seq, of a command whose id
// the worker could not read (its Nats-Msg-Id is invalid:<seq>), is of id:
// its body has this id, or it was published with this Nats-Msg-Id (a
// malformed command is often found by the id its publisher gave it).
func invalidOf(ctx context.Context, st jetstream.Stream, seq uint64, id string) bool {
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return false
	}
	var dl DeadLetter
	if json.Unmarshal(m.Data, &dl) != nil {
		return false
	}
	for k, vs := range dl.Headers {
		if strings.EqualFold(k, jetstream.MsgIDHeader) && len(vs) > 0 && msgIDOf(vs[0], id) {
			return true
		}
	}
	var body struct {
		ID string `json:"id"`
	}
	return json.Unmarshal(dl.Body(), &body) == nil && body.ID == id
}

// findWaiting returns the sequence of a message carrying command id in the
// commands stream, or 0. The stream is a work queue that another consumer
// may not overlap, so it reads message by message (only the backlog is
// there).
func findWaiting(ctx context.Context, js jetstream.JetStream, stream, filter, id string) (seq uint64, subject string, err error) {
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read stream %s: %w", stream, err)
	}
	info := st.CachedInfo() // js.Stream has just read it
	seq = info.State.FirstSeq
	for range MaxStatusScan {
		if info.State.Msgs == 0 || seq > info.State.LastSeq {
			return 0, "", nil
		}
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, "", nil
		}
		if err != nil {
			return 0, "", fmt.Errorf("read stream %s: %w", stream, err)
		}
		if carriesID(m, id) {
			return m.Sequence, m.Subject, nil
		}
		seq = m.Sequence + 1
	}
	return 0, "", fmt.Errorf("command %q: more than %d commands wait in %s; not all were searched", id, MaxStatusScan, stream)
}

// deadLetterOf reports whether the dead letter m is that of the command
// message at seq in the commands stream.
func deadLetterOf(m *jetstream.RawStreamMsg, commands string, seq uint64) bool {
	var dl struct {
		Stream   string `json:"stream"`
		Sequence uint64 `json:"stream_seq"`
	}
	return json.Unmarshal(m.Data, &dl) == nil && dl.Stream == commands && dl.Sequence == seq
}

// carriesID: the message's Nats-Msg-Id is id (or a replay of it), or its
// body's id is.
func carriesID(m *jetstream.RawStreamMsg, id string) bool {
	if msgIDOf(m.Header.Get(jetstream.MsgIDHeader), id) {
		return true
	}
	var body struct {
		ID string `json:"id"`
	}
	return json.Unmarshal(m.Data, &body) == nil && body.ID == id
}

// msgIDOf: the Nats-Msg-Id h is id's, or a replay's of it (<id>:replay:<seq>).
func msgIDOf(h, id string) bool {
	return h == id || len(h) > len(id) && h[:len(id)+1] == id+":"
}

// whyWaiting fills in st's Project and Paused when the waiting command's
// project is paused. It is best effort: a command it cannot read, or a
// project state it may not read, leaves them empty.
func whyWaiting(ctx context.Context, js jetstream.JetStream, s Subjects, stream string, st *CommandStatus) {
	commands, err := js.Stream(ctx, stream)
	if err != nil {
		return
	}
	m, err := commands.GetMsg(ctx, st.Sequence)
	if err != nil {
		return
	}
	name := projectOf(s, m)
	states, err := project.Bind(ctx, js, "")
	if err != nil {
		return
	}
	ps, err := states.Get(ctx, name)
	if err != nil || ps.Active() {
		return
	}
	st.Project, st.Paused = name, ps.Pause()
}

// projectOf names the project of the command message m: the one its
// subject names (contract v2), else its body's site token, else the
// default project.
func projectOf(s Subjects, m *jetstream.RawStreamMsg) string {
	if r, err := s.ParseCommand(m.Subject); err == nil && r.Project != "" {
		return r.Project
	}
	var body struct {
		SiteToken string `json:"site_token"`
	}
	_ = json.Unmarshal(m.Data, &body)
	if body.SiteToken != "" {
		return body.SiteToken
	}
	return contract.DefaultProject
}
