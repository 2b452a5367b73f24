package actions

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Waiting counts the commands waiting in the commands stream on s's
// subjects: one project's (s.Project set, contract v2) or the v1 subjects.
// A v1 command names its project in its body, so the v1 count is every
// project's. It is one read of the stream, listing the subjects that hold
// commands: its cost grows with the number of chats waiting.
func Waiting(ctx context.Context, js jetstream.JetStream, s Subjects, opts ...Option) (int, error) {
	o := newOptions(opts)
	st, err := js.Stream(ctx, o.commands)
	if err != nil {
		return 0, fmt.Errorf("commands stream %s: %w", o.commands, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.ConsumeFilter()))
	if err != nil {
		return 0, fmt.Errorf("commands stream %s: %w", o.commands, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}
