package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RetentionChange is one retention setting of an existing stream that
// differs from a Topology's.
type RetentionChange struct {
	Stream  string
	Setting string // "max age", "duplicate window", "max messages", "max bytes"
	Flag    string // the worker's flag that sets it
	From    string // the stream's value
	To      string // the Topology's value
}

func (c RetentionChange) String() string {
	return fmt.Sprintf("%s %s: %s -> %s (%s)", c.Stream, c.Setting, c.From, c.To, c.Flag)
}

// retentionSetting is one retention field: how to read it from a stream's
// configuration and from a Topology, and how to write it into the latter.
type retentionSetting struct {
	stream  func(Topology) string
	setting string
	flag    string
	get     func(jetstream.StreamConfig) int64
	want    func(Topology) int64
	set     func(*Topology, int64)
	show    func(int64) string
}

func showAge(v int64) string   { return short(time.Duration(v)) }
func showCount(v int64) string { return fmt.Sprint(v) }

// retentionSettings are the streams' retention settings that the flags set.
var retentionSettings = []retentionSetting{
	{func(t Topology) string { return t.CommandsStream }, "max age", "--commands-max-age",
		func(c jetstream.StreamConfig) int64 { return int64(c.MaxAge) },
		func(t Topology) int64 { return int64(t.CommandsMaxAge) },
		func(t *Topology, v int64) { t.CommandsMaxAge = time.Duration(v) }, showAge},
	{func(t Topology) string { return t.ResultsStream }, "max age", "--results-max-age",
		func(c jetstream.StreamConfig) int64 { return int64(c.MaxAge) },
		func(t Topology) int64 { return int64(t.ResultsMaxAge) },
		func(t *Topology, v int64) { t.ResultsMaxAge = time.Duration(v) }, showAge},
	{func(t Topology) string { return t.DeadLettersStream }, "max age", "--dlq-max-age",
		func(c jetstream.StreamConfig) int64 { return int64(c.MaxAge) },
		func(t Topology) int64 { return int64(t.DeadLettersMaxAge) },
		func(t *Topology, v int64) { t.DeadLettersMaxAge = time.Duration(v) }, showAge},
	{func(t Topology) string { return t.DeadLettersStream }, "max messages", "--dlq-max-msgs",
		func(c jetstream.StreamConfig) int64 { return c.MaxMsgs },
		func(t Topology) int64 { return t.DeadLettersMaxMsgs },
		func(t *Topology, v int64) { t.DeadLettersMaxMsgs = v }, showCount},
	{func(t Topology) string { return t.DeadLettersStream }, "max bytes", "--dlq-max-bytes",
		func(c jetstream.StreamConfig) int64 { return c.MaxBytes },
		func(t Topology) int64 { return t.DeadLettersMaxBytes },
		func(t *Topology, v int64) { t.DeadLettersMaxBytes = v }, showCount},
}

// The duplicate window is one flag for the three streams.
var duplicateWindowStreams = []func(Topology) string{
	func(t Topology) string { return t.CommandsStream },
	func(t Topology) string { return t.ResultsStream },
	func(t Topology) string { return t.DeadLettersStream },
}

// RetentionChanges lists the retention settings of the existing streams
// that t would change. A stream that does not exist yet changes nothing: it
// is created with t's settings.
func RetentionChanges(ctx context.Context, js jetstream.JetStream, t Topology) ([]RetentionChange, error) {
	t = t.WithDefaults()
	configs := map[string]*jetstream.StreamConfig{}
	for _, name := range []string{t.CommandsStream, t.ResultsStream, t.DeadLettersStream} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", name, explain(err))
		}
		cfg := s.CachedInfo().Config
		configs[name] = &cfg
	}
	var out []RetentionChange
	for _, r := range retentionSettings {
		name := r.stream(t)
		if cfg := configs[name]; cfg != nil && r.get(*cfg) != r.want(t) {
			out = append(out, RetentionChange{name, r.setting, r.flag, r.show(r.get(*cfg)), r.show(r.want(t))})
		}
	}
	for _, stream := range duplicateWindowStreams {
		name := stream(t)
		if cfg := configs[name]; cfg != nil && cfg.Duplicates != t.DuplicateWindow {
			out = append(out, RetentionChange{name, "duplicate window", "--duplicate-window", short(cfg.Duplicates), short(t.DuplicateWindow)})
		}
	}
	return out, nil
}

// KeepRetention returns t with the retention settings of the existing
// streams in place of its own, and what it kept: `worker run` provisions
// with it, so a worker started with other retention flags warns instead of
// changing retention for every replica (`worker provision` changes it).
func KeepRetention(ctx context.Context, js jetstream.JetStream, t Topology) (Topology, []RetentionChange, error) {
	t = t.WithDefaults()
	changes, err := RetentionChanges(ctx, js, t)
	if err != nil || len(changes) == 0 {
		return t, nil, err
	}
	for _, name := range []string{t.CommandsStream, t.ResultsStream, t.DeadLettersStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		cfg := s.CachedInfo().Config
		for _, r := range retentionSettings {
			if r.stream(t) == name {
				r.set(&t, r.get(cfg))
			}
		}
		// One window for the three streams: keep the commands stream's.
		if name == t.CommandsStream {
			t.DuplicateWindow = cfg.Duplicates
		}
	}
	return t, changes, nil
}
