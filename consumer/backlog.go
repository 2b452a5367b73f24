package consumer

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// WatchBacklog copies, every interval until ctx ends, the age of the oldest
// command, the number of pending schedules and the number of stored dead
// letters into m.
//
// The commands stream is a work queue: a command leaves it only when its
// result or dead letter is stored, so the first message on the commands'
// subjects is the oldest command not yet done, whichever replica holds it
// and whether it waits for a first delivery, a retry or its chat's turn. Its
// stream timestamp is when it was published (or fired, for a scheduled one).
// The same stream holds the pending schedules, on subjects of their own: a
// schedule set for next week is no command waiting, and must not look like
// one to the oldest-command alert. Every replica reports the same values,
// so alerts take the max.
func WatchBacklog(ctx context.Context, js jetstream.JetStream, topo Topology, m *OnCallMetrics, every time.Duration, log *zap.Logger) {
	if m == nil {
		return
	}
	if log == nil {
		log = zap.NewNop()
	}
	topo = topo.WithDefaults()
	read := func() { readBacklog(ctx, js, topo, m, every, log) }
	read()
	tick(ctx, every, read)
}

func readBacklog(ctx context.Context, js jetstream.JetStream, topo Topology, m *OnCallMetrics, timeout time.Duration, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A failed read leaves the last value: a gauge that drops to 0 while
	// NATS is unreachable would clear the very alerts that should fire.
	if s, err := js.Stream(ctx, topo.CommandsStream); err == nil {
		if age, err := oldestCommandAge(ctx, s, topo.Subjects.CommandsFilter(), time.Now()); err == nil {
			m.OldestCommandAge.Set(age.Seconds())
		} else if ctx.Err() == nil {
			log.Debug("reading the oldest command", zap.Error(err))
		}
		if byProject, err := unservedCommands(ctx, s, topo); err == nil {
			setUnserved(m, byProject)
		} else if ctx.Err() == nil {
			log.Debug("counting the commands of projects no worker serves", zap.Error(err))
		}
		if n, err := pendingSchedules(ctx, s, topo.Subjects.SchedulesFilter()); err == nil {
			m.SchedulesPending.Set(float64(n))
		} else if ctx.Err() == nil {
			log.Debug("counting the pending schedules", zap.Error(err))
		}
	} else if ctx.Err() == nil {
		log.Debug("reading the commands stream's backlog", zap.Error(err))
	}
	if s, err := js.Stream(ctx, topo.DeadLettersStream); err == nil {
		m.DeadLettersStored.Set(float64(s.CachedInfo().State.Msgs))
	} else if ctx.Err() == nil {
		log.Debug("reading the dead-letter stream's count", zap.Error(err))
	}
}

// oldestCommandAge is how long the first message on the commands' subjects
// has waited: zero when there is none, and never negative when the server's
// clock is ahead of ours. One direct read from the stream's first sequence,
// and one more for each command ahead of it that the visitor's quiet hours
// hold (up to maxHeldSkipped): like a schedule, a held command is not late.
func oldestCommandAge(ctx context.Context, s jetstream.Stream, commands string, now time.Time) (time.Duration, error) {
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return 0, nil
	}
	for seq, skipped := st.FirstSeq, 0; ; skipped++ {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(commands))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil // only schedules, or held commands, are waiting
		}
		if err != nil {
			return 0, err
		}
		if skipped < maxHeldSkipped {
			if cmd, err := contract.DecodeBody(m.Data); err == nil && !cmd.QuietUntil(now).IsZero() {
				seq = m.Sequence + 1
				continue
			}
		}
		return max(now.Sub(m.Time), 0), nil
	}
}

// maxHeldSkipped bounds the reads of one look at the backlog. Behind more
// held commands than this, the next command's age is reported, held or not.
const maxHeldSkipped = 64

// pendingSchedules counts the messages on the schedules' subjects: each
// schedule has a subject of its own, so it is the number of those subjects.
func pendingSchedules(ctx context.Context, s jetstream.Stream, schedules string) (int, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(schedules))
	if err != nil {
		return 0, err
	}
	return len(info.State.Subjects), nil
}

// unservedCommands counts, by project, the v2 commands in the stream of
// the projects no worker consumes: those without a project durable, or
// whose durable has neither a pull request waiting nor a command delivered
// (no worker's fetch loop on it). One read of the stream's v2 subjects and
// one listing of its consumers: the first costs in proportion to the chats
// with commands waiting (docs/sizing.md).
func unservedCommands(ctx context.Context, s jetstream.Stream, topo Topology) (map[string]uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(topo.Subjects.For("*").ConsumeFilter()))
	if err != nil {
		return nil, err
	}
	byProject := map[string]uint64{}
	for subject, n := range info.State.Subjects {
		if r, err := topo.Subjects.ParseCommand(subject); err == nil && r.Project != "" {
			byProject[r.Project] += n
		}
	}
	if len(byProject) == 0 {
		return byProject, nil
	}
	list := s.ListConsumers(ctx)
	for c := range list.Info() {
		name, ok := strings.CutPrefix(c.Name, topo.Durable+"-p-")
		if ok && (c.NumWaiting > 0 || c.NumAckPending > 0) {
			delete(byProject, name)
		}
	}
	return byProject, list.Err()
}

// maxUnservedLabels bounds the project label of unserved_commands: an app
// allowed to publish on any project's subjects could name any number.
const maxUnservedLabels = 50

// setUnserved replaces the unserved_commands series: the largest
// maxUnservedLabels projects by name, the others' sum as "_other" (no
// project can be named so).
func setUnserved(m *OnCallMetrics, byProject map[string]uint64) {
	names := slices.SortedFunc(maps.Keys(byProject), func(a, b string) int {
		return cmp.Or(cmp.Compare(byProject[b], byProject[a]), cmp.Compare(a, b))
	})
	shown := map[string]uint64{}
	for i, name := range names {
		if i < maxUnservedLabels {
			shown[name] = byProject[name]
		} else {
			shown["_other"] += byProject[name]
		}
	}
	// Series are replaced, not reset: an alert's expression never sees
	// none between two reads.
	for name := range m.unservedShown {
		if _, ok := shown[name]; !ok {
			m.UnservedCommands.DeleteLabelValues(name)
		}
	}
	m.unservedShown = map[string]bool{}
	for name, n := range shown {
		m.UnservedCommands.WithLabelValues(name).Set(float64(n))
		m.unservedShown[name] = true
	}
}
