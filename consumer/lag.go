package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"go.uber.org/zap"
)

// lagWatcher copies the consumer's pending, ack-pending and redelivered
// counts into the metrics every interval, for dashboards and lag alerts.
type lagWatcher struct {
	cons  jetstream.Consumer
	m     *Metrics
	log   *zap.Logger
	every time.Duration
}

// Run watches until ctx is done.
func (lw lagWatcher) Run(ctx context.Context) {
	if lw.m == nil {
		return
	}
	every := lw.every
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		infoCtx, cancel := context.WithTimeout(ctx, every)
		info, err := lw.cons.Info(infoCtx)
		cancel()
		if err == nil {
			lw.m.Pending.Set(float64(info.NumPending))
			lw.m.AckPending.Set(float64(info.NumAckPending))
			lw.m.Redelivered.Set(float64(info.NumRedelivered))
		} else if ctx.Err() == nil {
			lw.log.Debug("reading the consumer's lag", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
