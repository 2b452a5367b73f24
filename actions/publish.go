package actions

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publish validates c, gives it an id when it has none, and publishes it to
// its subject with Nats-Msg-Id set to the id, so the stream drops a duplicate
// published within its duplicate window. It returns once JetStream has stored
// the command, and returns the command as published. When ctx carries a
// span (an app's OpenTelemetry trace), its W3C traceparent goes with the
// command, so the worker's spans, the Chat API request, the result and the
// dead letter continue that trace.
//
// When the stream reports the publish as a duplicate, Publish compares c
// with what was stored under its id and returns a *DuplicateError:
// errors.Is(err, ErrAlreadyPublished) when it is the same command (a retried
// publish whose first try was stored: success), errors.Is(err, ErrIDReused)
// when it differs (this command was dropped and will not run).
func Publish(ctx context.Context, js jetstream.JetStream, c Commander, s Subjects, opts ...Option) (Command, error) {
	cmd, _, err := publish(ctx, js, c, s, newOptions(opts))
	return cmd, err
}

// publish is Publish, returning also the sequence the command is stored at
// (the first one's, for a duplicate).
func publish(ctx context.Context, js jetstream.JetStream, c Commander, s Subjects, o options) (Command, uint64, error) {
	cmd := c.Command()
	if cmd.ID == "" {
		cmd.ID = contract.NewID()
	}
	if err := cmd.Validate(); err != nil {
		return cmd, 0, err
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return cmd, 0, fmt.Errorf("encode command: %w", err)
	}
	msg := &nats.Msg{Subject: s.Command(cmd.Type, cmd.ChatID), Data: data, Header: tracecontext.Inject(ctx, nats.Header{})}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(cmd.ID))
	if err != nil {
		return cmd, 0, fmt.Errorf("publish %s command %s: %w", cmd.Type, cmd.ID, err)
	}
	if ack.Duplicate {
		return cmd, ack.Sequence, compareDuplicate(ctx, js, cmd, ack.Stream, ack.Sequence, o)
	}
	return cmd, ack.Sequence, nil
}

// Option adjusts Publish, PublishAndWait, Status and the schedules to a
// deployment whose stream or bucket names differ from the defaults.
type Option func(*options)

type options struct {
	bucket                         string
	replace                        bool
	commands, results, deadLetters string
}

func newOptions(opts []Option) options {
	o := options{commands: contract.DefaultCommandsStream, results: contract.DefaultResultsStream, deadLetters: contract.DefaultDeadLettersStream}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithIdempotencyBucket names the worker's idempotency bucket (default
// CHAT_IDEMPOTENCY), where what the worker took from the stream is
// recorded.
func WithIdempotencyBucket(name string) Option {
	return func(o *options) { o.bucket = name }
}

// WithReplace lets ScheduleAt and ScheduleRecurring replace a pending
// schedule that has the command's id and a different body (another
// content, type or chat), rather than refuse it.
func WithReplace() Option {
	return func(o *options) { o.replace = true }
}

// WithStreams names the commands, results and dead-letter streams (default
// CHAT_COMMANDS, CHAT_RESULTS and CHAT_DLQ); an empty name keeps the
// default.
func WithStreams(commands, results, deadLetters string) Option {
	return func(o *options) {
		for _, f := range []struct {
			dst *string
			v   string
		}{{&o.commands, commands}, {&o.results, results}, {&o.deadLetters, deadLetters}} {
			if f.v != "" {
				*f.dst = f.v
			}
		}
	}
}
