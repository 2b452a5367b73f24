package consumer

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Scheduled commands live in the commands stream: nats-server requires a
// schedule's target subject to be in the schedule's own stream, so the
// schedules (<prefix>.schedules.>) cannot have a stream of their own. The
// stream therefore allows:
//
//   - message schedules (nats-server 2.12 and later);
//   - per-message TTLs, so a schedule carries "Nats-TTL: never" and
//     outlives the stream's MaxAge (the server strips it from the command
//     it publishes, which ages as any other);
//   - roll-ups, which the server requires for schedules: it keeps one
//     schedule per subject.
//
// The worker's consumer filters on <prefix>.commands.>, so a pending
// schedule is never delivered to it, and the work queue keeps it until it
// fires (the server then removes it) or is cancelled. Each of these
// settings can be turned on in place, so an existing deployment keeps its
// commands.

// checkSchedules refuses a commands stream whose server did not keep the
// schedule settings: a server before 2.12 ignores what it does not know, and
// would store a schedule as a plain message that never fires.
func checkSchedules(want jetstream.StreamConfig, got *jetstream.StreamInfo) error {
	if !want.AllowMsgSchedules || got == nil {
		return nil
	}
	if !got.Config.AllowMsgSchedules || !got.Config.AllowMsgTTL {
		return fmt.Errorf("stream %s: the NATS server did not enable message schedules and message TTLs, which scheduled commands need: use nats-server 2.12 or later", want.Name)
	}
	return nil
}
