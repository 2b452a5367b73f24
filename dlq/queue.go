package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors callers may test for with errors.Is.
var (
	// ErrNoStream: the dead-letter stream does not exist.
	ErrNoStream = errors.New("dead-letter stream not found")
	// ErrNotFound: show found no dead letter with that sequence or id.
	ErrNotFound = errors.New("no such dead letter")
	// ErrEmpty: a filter selected nothing to replay or purge.
	ErrEmpty = errors.New("no dead letters match")
)

// Config names the streams of one deployment. Zero fields take the
// contract's names (contract.DefaultDeadLettersStream, ...).
type Config struct {
	Subjects       contract.Subjects
	Stream         string // CHAT_DLQ
	CommandsStream string // CHAT_COMMANDS: replays must be stored there
}

// Queue is the dead-letter stream of one deployment.
type Queue struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    Config
}

// Open finds the dead-letter stream. It fails with ErrNoStream, explained,
// when the stream does not exist.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Queue, error) {
	if cfg.Stream == "" {
		cfg.Stream = contract.DefaultDeadLettersStream
	}
	if cfg.CommandsStream == "" {
		cfg.CommandsStream = contract.DefaultCommandsStream
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	st, err := js.Stream(ctx, cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: this NATS server has no stream %s; start the worker once or run `worker provision` to create it (and check --nats-url and --subject-prefix)", ErrNoStream, cfg.Stream)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return nil, fmt.Errorf("read stream %s: %w (enable JetStream on the NATS server: `nats-server -js`)", cfg.Stream, err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("read stream %s: %w (is JetStream available on this NATS server?)", cfg.Stream, err)
	case err != nil:
		return nil, fmt.Errorf("read stream %s: %w", cfg.Stream, err)
	}
	return &Queue{js: js, stream: st, cfg: cfg}, nil
}

// Stream is the name of the dead-letter stream.
func (q *Queue) Stream() string { return q.cfg.Stream }

// Count is how many dead letters the stream holds now.
func (q *Queue) Count(ctx context.Context) (uint64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", q.cfg.Stream, err)
	}
	return info.State.Msgs, nil
}

// Entry is one dead letter as stored in the stream.
type Entry struct {
	Seq      uint64              `json:"seq"`               // in the dead-letter stream
	Subject  string              `json:"subject"`           // chat.dlq.[<project>.]<type>.<chat>
	StoredAt time.Time           `json:"stored_at"`         // when the stream stored it
	Project  string              `json:"project,omitempty"` // the subject's <project> (contract v2)
	Type     string              `json:"type"`              // the subject's <type>
	ChatID   string              `json:"chat_id,omitempty"`
	ID       string              `json:"id,omitempty"` // the command id, when readable
	Letter   contract.DeadLetter `json:"dead_letter"`
	// Malformed says why the message is not a dead-letter record (someone
	// published something else on a dead-letter subject).
	Malformed string `json:"malformed,omitempty"`
}

// Class is the dead letter's error class.
func (e Entry) Class() contract.Class { return e.Letter.Error.Class }

// Time is when the worker gave up on the command.
func (e Entry) Time() time.Time {
	if !e.Letter.DeadAt.IsZero() {
		return e.Letter.DeadAt
	}
	return e.StoredAt
}

func (q *Queue) entry(subject string, seq uint64, stored time.Time, data []byte) Entry {
	e := Entry{Seq: seq, Subject: subject, StoredAt: stored.UTC()}
	var token string
	e.Project, e.Type, token = splitDeadSubject(q.cfg.Subjects, subject)
	if id, err := contract.ParseToken(token); err == nil {
		e.ChatID = id
	}
	if err := json.Unmarshal(data, &e.Letter); err != nil {
		e.Malformed = "not a dead-letter record: " + err.Error()
		return e
	}
	if len(e.Letter.Command) > 0 {
		var fields map[string]json.RawMessage
		if json.Unmarshal(e.Letter.Command, &fields) == nil {
			var s string
			if json.Unmarshal(fields["id"], &s) == nil {
				e.ID = s
			}
			if e.ChatID == "" && json.Unmarshal(fields["chat_id"], &s) == nil {
				e.ChatID = s
			}
		}
	}
	if e.ID == "" {
		e.ID = publishedID(e.Letter.Headers)
	}
	return e
}

// splitDeadSubject reads a dead letter's subject of either version:
// <prefix>.dlq.<type>.<chat token> or <prefix>.dlq.<project>.<type>.<chat
// token>, where <type> may be "invalid" followed by what could not be read.
// A v1 subject never begins with a project's name: a type's name and
// "invalid" cannot name one.
func splitDeadSubject(s contract.Subjects, subject string) (project, typ, token string) {
	rest := strings.TrimPrefix(subject, strings.TrimSuffix(s.For("").DeadLettersFilter(), ">"))
	typ, token, _ = strings.Cut(rest, ".")
	if token != "" && contract.CheckProjectName(typ) == nil {
		project = typ
		typ, token, _ = strings.Cut(token, ".")
	}
	return project, typ, token
}

// publishedID is the id a command without a readable one was published
// under: its Nats-Msg-Id, less the suffix a replay adds. Its publisher
// knows it by that id, and `worker status` finds it by it too.
func publishedID(h map[string][]string) string {
	for k, vs := range h {
		if !strings.EqualFold(k, jetstream.MsgIDHeader) || len(vs) == 0 {
			continue
		}
		id := vs[0]
		if i := strings.LastIndex(id, ":replay:"); i > 0 {
			if _, err := strconv.ParseUint(id[i+len(":replay:"):], 10, 64); err == nil {
				id = id[:i]
			}
		}
		if id == "-" || len(id) > contract.MaxIDBytes {
			return ""
		}
		return id
	}
	return ""
}

// Selection is what a filter selected.
type Selection struct {
	Entries []Entry // oldest first, at most Filter.Limit
	// Matched counts all matching dead letters, beyond the limit too.
	Matched int
}

// List returns the dead letters that match f, oldest first. Dead letters
// stored after List started are left out, so a replay never chases the
// dead letters it causes.
func (q *Queue) List(ctx context.Context, f Filter) (Selection, error) {
	var sel Selection
	err := q.scan(ctx, f, func(e Entry) {
		sel.Matched++
		if f.Limit == 0 || len(sel.Entries) < f.Limit {
			sel.Entries = append(sel.Entries, e)
		}
	})
	return sel, err
}

// fetchWait bounds one fetch; the scan ends sooner when the last message
// says nothing is pending.
const fetchWait = 2 * time.Second

func (q *Queue) scan(ctx context.Context, f Filter, fn func(Entry)) error {
	ictx, cancel := withTimeout(ctx)
	info, err := q.stream.Info(ictx)
	cancel()
	if err != nil {
		return fmt.Errorf("read stream %s: %w", q.cfg.Stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    f.subjects(q.cfg.Subjects),
		InactiveThreshold: 30 * time.Second, // in case we die before deleting it
	}
	if !f.Since.IsZero() {
		// The stream stores a dead letter after the worker gave up on it,
		// so nothing stored before Since can have died after it.
		since := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cctx, cancel := withTimeout(ctx)
	cons, err := q.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("read %s: %w", q.cfg.Stream, err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := withTimeout(context.WithoutCancel(ctx))
			_ = q.stream.DeleteConsumer(dctx, ci.Name)
			cancel()
		}
	}()
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil
	}
	// Ask for exactly what is pending, so a fetch ends when it has it
	// rather than when it expires.
	pending := ci.NumPending
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return fmt.Errorf("read %s: %w", q.cfg.Stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			if meta.Sequence.Stream > last {
				return nil // stored after the scan began
			}
			if e := q.entry(msg.Subject(), meta.Sequence.Stream, meta.Timestamp, msg.Data()); f.match(e) {
				fn(e)
			}
			pending = meta.NumPending
			if pending == 0 || meta.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("read %s: %w", q.cfg.Stream, err)
		}
		if n == 0 {
			return nil // what was pending was deleted meanwhile
		}
	}
}

// Get returns the dead letter with stream sequence ref, or else the latest
// dead letter of the command whose id is ref.
func (q *Queue) Get(ctx context.Context, ref string) (Entry, error) {
	return q.GetIn(ctx, "", ref)
}

// GetIn is Get among the dead letters of one project (contract v2), or of
// all when project is empty.
func (q *Queue) GetIn(ctx context.Context, project, ref string) (Entry, error) {
	if seq, err := strconv.ParseUint(ref, 10, 64); err == nil && seq > 0 {
		gctx, cancel := withTimeout(ctx)
		m, err := q.stream.GetMsg(gctx, seq)
		cancel()
		switch {
		case err == nil:
			if e := q.entry(m.Subject, m.Sequence, m.Time, m.Data); project == "" || e.Project == project {
				return e, nil
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return Entry{}, fmt.Errorf("read %s sequence %d: %w", q.cfg.Stream, seq, err)
		}
		// Not a sequence in the stream (or not the project's): perhaps an
		// all-digit command id.
	}
	var found *Entry
	err := q.scan(ctx, Filter{ID: ref, Project: project}, func(e Entry) { found = &e })
	if err != nil {
		return Entry{}, err
	}
	if found == nil {
		return Entry{}, fmt.Errorf("%w: %s has no dead letter with sequence or command id %q (list them with `worker dlq ls`)", ErrNotFound, q.cfg.Stream, ref)
	}
	return *found, nil
}

// Purge deletes the given dead letters by sequence and returns how many it
// deleted. One already gone counts as deleted.
func (q *Queue) Purge(ctx context.Context, entries []Entry) (int, error) {
	n := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := q.delete(ctx, e.Seq); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// delete removes one dead letter. It is not cut short by ctx: it follows a
// republish that was stored, and leaving the dead letter would replay it
// again (harmlessly, but noisily) on the next run.
func (q *Queue) delete(ctx context.Context, seq uint64) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := q.stream.DeleteMsg(dctx, seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead letter %d from %s: %w", seq, q.cfg.Stream, err)
	}
	return nil
}

// withTimeout adds a default deadline when ctx has none, as jetstream does.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 10*time.Second)
}
