package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultStream is the stream of the audit entries.
const DefaultStream = "CHAT_AUDIT"

// DefaultMaxAge is how long an entry is kept.
const DefaultMaxAge = 90 * 24 * time.Hour

// The actions operators take.
const (
	Replay = "replay"
	Purge  = "purge"
	Cancel = "cancel"
	Pause  = "pause"
	Resume = "resume"
	// Settings: a project's defaults set (worker projects set).
	Settings = "settings"
	// RunNow: a scheduled command published ahead of its time.
	RunNow = "run-now"
)

// Entry is one operator action.
type Entry struct {
	Who    string `json:"who"`
	Action string `json:"action"` // replay, purge, cancel, run-now, pause, resume, settings
	// Which names what it was done to: a filter, a command id, a project.
	Which string `json:"which"`
	// Count is how many things it changed.
	Count int       `json:"count"`
	At    time.Time `json:"at"`
	// Detail is what else an operator needs: the reason of a pause, how
	// many a replay skipped, the new deadline.
	Detail string `json:"detail,omitempty"`
	// Via is where it was done: console or cli.
	Via string `json:"via,omitempty"`
}

// Config says where the log lives. Zero fields take the defaults.
type Config struct {
	Subjects actions.Subjects
	Stream   string
	Replicas int
	MaxAge   time.Duration
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	return c
}

func prefix(s actions.Subjects) string {
	if s.Prefix == "" {
		return contract.DefaultPrefix
	}
	return s.Prefix
}

// Log is the audit stream of one deployment.
type Log struct {
	js  jetstream.JetStream
	cfg Config
}

// New returns the log; it does no I/O. Append creates the stream when it
// is missing.
func New(js jetstream.JetStream, cfg Config) *Log {
	return &Log{js: js, cfg: cfg.withDefaults()}
}

// Open creates the stream, or updates an existing one to cfg (as
// `worker provision` does), and returns the log.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Log, error) {
	l := New(js, cfg)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, l.streamConfig()); err != nil {
		return nil, fmt.Errorf("audit: stream %s: %w", l.cfg.Stream, err)
	}
	return l, nil
}

func (l *Log) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        l.cfg.Stream,
		Description: "what operators did: replays, purges, cancelled schedules, paused and resumed projects",
		Subjects:    []string{prefix(l.cfg.Subjects) + ".audit.>"},
		MaxAge:      l.cfg.MaxAge,
		Replicas:    l.cfg.Replicas,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
	}
}

// Append records e; At defaults to now.
func (l *Log) Append(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if e.Action == "" || strings.ContainsAny(e.Action, ".*> \t\r\n") {
		return fmt.Errorf("audit: action %q is not one word", e.Action)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	subject := prefix(l.cfg.Subjects) + ".audit." + e.Action
	_, err = l.js.Publish(ctx, subject, b)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// Not provisioned yet: create it, never update one that exists
		// (its replicas and limits are provision's to set).
		if _, cerr := l.js.CreateStream(ctx, l.streamConfig()); cerr != nil && !errors.Is(cerr, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("audit: create stream %s: %w", l.cfg.Stream, cerr)
		}
		_, err = l.js.Publish(ctx, subject, b)
	}
	if err != nil {
		return fmt.Errorf("audit: append %s: %w", e.Action, err)
	}
	return nil
}

// Recent returns at most n entries, newest first.
func (l *Log) Recent(ctx context.Context, n int) ([]Entry, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	st, err := l.js.Stream(ctx, l.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // nothing recorded yet
	}
	if err != nil {
		return nil, fmt.Errorf("audit: stream %s: %w", l.cfg.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: stream %s: %w", l.cfg.Stream, err)
	}
	var out []Entry
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < n; seq-- {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("audit: read %d: %w", seq, err)
		}
		var e Entry
		if json.Unmarshal(m.Data, &e) != nil {
			e = Entry{Action: strings.TrimPrefix(m.Subject, prefix(l.cfg.Subjects)+".audit."), Detail: "unreadable entry", At: m.Time}
		}
		out = append(out, e)
	}
	return out, nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, 5*time.Second)
}
