package consumer

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"go.uber.org/zap"
)

// lagWatcher copies the pending, ack-pending and redelivered counts of the
// worker's consumers (the v1 durable and every project's) into the
// metrics every interval, for dashboards and lag alerts: one listing of the
// stream's consumers, a page per 256 of them.
type lagWatcher struct {
	js    jetstream.JetStream
	topo  Topology
	m     *Metrics
	log   *zap.Logger
	every time.Duration
}

// Run watches until ctx is done.
func (lw lagWatcher) Run(ctx context.Context) {
	if lw.m == nil {
		return
	}
	lw.once(ctx)
	tick(ctx, lw.every, func() { lw.once(ctx) })
}

func (lw lagWatcher) once(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, lw.every)
	defer cancel()
	s, err := lw.js.Stream(ctx, lw.topo.CommandsStream)
	if err != nil {
		if ctx.Err() == nil {
			lw.log.Debug("reading the consumers' lag", zap.Error(err))
		}
		return
	}
	var pending uint64
	var ackPending, redelivered int
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Name != lw.topo.Durable && !strings.HasPrefix(info.Name, lw.topo.Durable+"-p-") {
			continue
		}
		pending += info.NumPending
		ackPending += info.NumAckPending
		redelivered += info.NumRedelivered
	}
	if err := list.Err(); err != nil {
		// A partial sum would look like progress: keep the last values.
		if ctx.Err() == nil {
			lw.log.Debug("reading the consumers' lag", zap.Error(err))
		}
		return
	}
	lw.m.Pending.Set(float64(pending))
	lw.m.AckPending.Set(float64(ackPending))
	lw.m.Redelivered.Set(float64(redelivered))
}
