package actions

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

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
}

func (x Export) Command() Command {
	return Command{ID: x.ID, Type: TypeExport, ChatID: x.ChatID, SiteToken: x.SiteToken, Metadata: x.Metadata}
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
// the command, and returns the command as published.
func Publish(ctx context.Context, js jetstream.JetStream, c Commander, s Subjects) (Command, error) {
	cmd := c.Command()
	if cmd.ID == "" {
		cmd.ID = NewID()
	}
	if err := cmd.Validate(); err != nil {
		return cmd, err
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return cmd, fmt.Errorf("encode command: %w", err)
	}
	msg := &nats.Msg{Subject: s.Command(cmd.Type, cmd.ChatID), Data: data, Header: nats.Header{}}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(cmd.ID)); err != nil {
		return cmd, fmt.Errorf("publish %s command %s: %w", cmd.Type, cmd.ID, err)
	}
	return cmd, nil
}

// NewID returns a random UUID (version 4), the form of id we suggest.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
