package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// WatchBacklog copies, every interval until ctx ends, the age of the oldest
// command and the number of stored dead letters into m.
//
// The commands stream is a work queue: a command leaves it only when its
// result or dead letter is stored, so the stream's first message is the
// oldest command not yet done, whichever replica holds it and whether it
// waits for a first delivery, a retry or its chat's turn. Its stream
// timestamp is when it was published. One stream info answers that, for the
// whole deployment; every replica reports the same value, so alerts take the
// max.
func WatchBacklog(ctx context.Context, js jetstream.JetStream, topo Topology, m *OnCallMetrics, every time.Duration, log *zap.Logger) {
	if m == nil {
		return
	}
	if log == nil {
		log = zap.NewNop()
	}
	topo = topo.WithDefaults()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		readBacklog(ctx, js, topo, m, every, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func readBacklog(ctx context.Context, js jetstream.JetStream, topo Topology, m *OnCallMetrics, timeout time.Duration, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A failed read leaves the last value: a gauge that drops to 0 while
	// NATS is unreachable would clear the very alerts that should fire.
	if s, err := js.Stream(ctx, topo.CommandsStream); err == nil {
		m.OldestCommandAge.Set(oldestAge(s.CachedInfo().State, time.Now()).Seconds())
	} else if ctx.Err() == nil {
		log.Debug("reading the commands stream's backlog", zap.Error(err))
	}
	if s, err := js.Stream(ctx, topo.DeadLettersStream); err == nil {
		m.DeadLettersStored.Set(float64(s.CachedInfo().State.Msgs))
	} else if ctx.Err() == nil {
		log.Debug("reading the dead-letter stream's count", zap.Error(err))
	}
}

// oldestAge is how long the stream's first message has waited: zero for an
// empty stream, and never negative when the server's clock is ahead of ours.
func oldestAge(st jetstream.StreamState, now time.Time) time.Duration {
	if st.Msgs == 0 || st.FirstTime.IsZero() {
		return 0
	}
	return max(now.Sub(st.FirstTime), 0)
}
