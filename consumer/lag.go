package consumer

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// watchLag copies the consumer's pending, ack-pending and redelivered counts
// into the metrics every interval, for dashboards and lag alerts.
func (w *Worker) watchLag(ctx context.Context, every time.Duration) {
	if w.m == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		infoCtx, cancel := context.WithTimeout(ctx, every)
		info, err := w.cons.Info(infoCtx)
		cancel()
		if err == nil {
			w.m.Pending.Set(float64(info.NumPending))
			w.m.AckPending.Set(float64(info.NumAckPending))
			w.m.Redelivered.Set(float64(info.NumRedelivered))
		} else if ctx.Err() == nil {
			w.log.Debug("reading the consumer's lag", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
