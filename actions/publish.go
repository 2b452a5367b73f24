package actions

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Commander is implemented by the typed commands Send, Note and Archive.
type Commander interface {
	Command() Command
}

// Send posts a message to a conversation as the team.
type Send struct {
	ID        string // optional: Publish makes one when empty
	ChatID    string
	Content   string
	From      string // optional: client (the API's documented default), agent or bot
	SiteToken string // optional: another project than the worker's default
	Metadata  json.RawMessage
	NotAfter  time.Time // optional: no API call at or after it (class expired)
}

// Note leaves a private note on a conversation.
type Note struct {
	ID, ChatID, Content, SiteToken string
	Metadata                       json.RawMessage
	NotAfter                       time.Time
}

// Archive archives a conversation.
type Archive struct {
	ID, ChatID, SiteToken string
	Metadata              json.RawMessage
	NotAfter              time.Time
}

// Export exports one conversation to the worker's export target; its result
// says where the export went.
type Export struct {
	ID, ChatID, SiteToken string
	Metadata              json.RawMessage
	NotAfter              time.Time
}

func (x Export) Command() Command {
	return Command{ID: x.ID, Type: TypeExport, ChatID: x.ChatID, SiteToken: x.SiteToken, Metadata: x.Metadata, NotAfter: x.NotAfter}
}

func (s Send) Command() Command {
	return Command{ID: s.ID, Type: TypeSend, ChatID: s.ChatID, Content: s.Content, From: s.From, SiteToken: s.SiteToken, Metadata: s.Metadata, NotAfter: s.NotAfter}
}

func (n Note) Command() Command {
	return Command{ID: n.ID, Type: TypeNote, ChatID: n.ChatID, Content: n.Content, SiteToken: n.SiteToken, Metadata: n.Metadata, NotAfter: n.NotAfter}
}

func (a Archive) Command() Command {
	return Command{ID: a.ID, Type: TypeArchive, ChatID: a.ChatID, SiteToken: a.SiteToken, Metadata: a.Metadata, NotAfter: a.NotAfter}
}

// Command lets a Command be published as it is.
func (c Command) Command() Command { return c }

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
		cmd.ID = NewID()
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

// Option adjusts Publish, PublishAndWait and Status to a deployment whose
// stream or bucket names differ from the defaults.
type Option func(*options)

type options struct {
	bucket                         string
	commands, results, deadLetters string
}

func newOptions(opts []Option) options {
	o := options{commands: DefaultCommandsStream, results: DefaultResultsStream, deadLetters: DefaultDeadLettersStream}
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

// NewID returns a random UUID (version 4), the form of id we suggest.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
