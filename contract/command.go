package contract

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on a command, enforced before any work is done.
const (
	MaxIDBytes      = 128
	MaxChatIDBytes  = 256
	MaxContentBytes = 16 << 10
	// MaxMessageBytes bounds the whole command body: content, metadata and
	// the other fields together.
	MaxMessageBytes = 64 << 10
	// MaxJSONDepth bounds nesting (in metadata), so a hostile body cannot
	// make the decoder or anything that later walks the value recurse deeply.
	MaxJSONDepth = 32
)

// Senders a send command may name in "from".
const (
	FromClient = "client"
	FromAgent  = "agent"
	FromBot    = "bot"
)

// Command is one command as it travels on the wire (JSON, UTF-8).
type Command struct {
	ID        string          `json:"id"`
	Type      Type            `json:"type"`
	ChatID    string          `json:"chat_id"`
	Content   string          `json:"content,omitempty"`
	From      string          `json:"from,omitempty"`
	SiteToken string          `json:"site_token,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	// NotAfter, when set, is the command's deadline: the worker makes no API
	// call at or after it, and the command becomes a dead letter of class
	// expired instead (contract v1.1, "Deadlines").
	NotAfter time.Time `json:"not_after,omitzero"`
	// QuietHours, when set, holds the command while the visitor's local
	// time is inside the window (contract v1.2, "Quiet hours").
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// FrequencyCap, send only, bounds the automated sends to the chat
	// (contract v1.3, "Frequency caps").
	FrequencyCap *FrequencyCap `json:"frequency_cap,omitempty"`

	// Project is the project's name when the command came on a v2 subject
	// (chat.commands.<project>.<type>.<chat>), empty on a v1 subject. It is
	// never in the body: the subject, which NATS permissions can confine,
	// says it.
	Project string `json:"-"`
}

// wire mirrors Command with pointers, so Decode can tell an absent field from
// an empty one.
type wire struct {
	ID        *string         `json:"id"`
	Type      *string         `json:"type"`
	ChatID    *string         `json:"chat_id"`
	Content   *string         `json:"content"`
	From      *string         `json:"from"`
	SiteToken *string         `json:"site_token"`
	Metadata  json.RawMessage `json:"metadata"`
	NotAfter  *string         `json:"not_after"`
	// QuietHours is decoded strictly too: the decoder's refusal of
	// unknown fields reaches into it.
	QuietHours   *QuietHours   `json:"quiet_hours"`
	FrequencyCap *FrequencyCap `json:"frequency_cap"`
}

// Decode parses and validates the command in data, received on subject. Any
// problem is an *Error of class invalid whose message says what to fix.
func Decode(s Subjects, subject string, data []byte) (Command, error) {
	r, err := s.ParseCommand(subject)
	if err != nil {
		return Command{}, err
	}
	cmd, err := DecodeBody(data)
	if err != nil {
		return Command{}, err
	}
	if cmd.Type != r.Type {
		return Command{}, Invalidf("the body says type %q but the subject %q says %q", cmd.Type, subject, r.Type)
	}
	if Token(cmd.ChatID) != r.Chat {
		return Command{}, Invalidf("the body's chat_id has the token %q but the subject %q carries %q", Token(cmd.ChatID), subject, r.Chat)
	}
	cmd.Project = r.Project
	return cmd, nil
}

// DecodeBody parses and validates a command body without its subject
// (Decode also holds the body to its subject): a schedule's body, or a
// stored message to compare with.
func DecodeBody(data []byte) (Command, error) {
	if len(data) > MaxMessageBytes {
		return Command{}, Invalidf("the command is %d bytes; the limit is %d", len(data), MaxMessageBytes)
	}
	if !utf8.Valid(data) {
		return Command{}, Invalidf("the command is not valid UTF-8")
	}
	if err := checkDepth(data); err != nil {
		return Command{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return Command{}, Invalidf("the command is not a valid JSON object: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Command{}, Invalidf("the command has data after its JSON object")
	}
	cmd := Command{Metadata: w.Metadata}
	var missing []string
	take := func(dst *string, p *string, name string) {
		if p == nil {
			missing = append(missing, name)
			return
		}
		*dst = *p
	}
	take(&cmd.ID, w.ID, "id")
	var typ string
	take(&typ, w.Type, "type")
	cmd.Type = Type(typ)
	take(&cmd.ChatID, w.ChatID, "chat_id")
	if len(missing) > 0 {
		return Command{}, Invalidf("the command lacks the required field(s) %s", strings.Join(missing, ", "))
	}
	if !cmd.Type.Known() {
		return Command{}, Invalidf("unknown command type %q: want one of %s", cmd.Type, typeList)
	}
	spec, _ := Lookup(cmd.Type)
	switch {
	case spec.Content && w.Content == nil:
		return Command{}, Invalidf("%s %s command needs \"content\"", article(cmd.Type), cmd.Type)
	case spec.Content:
		cmd.Content = *w.Content
	case w.Content != nil:
		return Command{}, Invalidf("%s %s command takes no \"content\"", article(cmd.Type), cmd.Type)
	}
	if w.From != nil {
		if !spec.From {
			return Command{}, Invalidf("\"from\" is only for %s commands, not %s", fromTypes, cmd.Type)
		}
		cmd.From = *w.From
		if cmd.From == "" {
			return Command{}, Invalidf("\"from\" is empty: leave it out, or use %s, %s or %s", FromClient, FromAgent, FromBot)
		}
	}
	if w.SiteToken != nil {
		cmd.SiteToken = *w.SiteToken
		if cmd.SiteToken == "" {
			return Command{}, Invalidf("\"site_token\" is empty: leave it out to use the worker's project")
		}
	}
	if w.NotAfter != nil {
		t, err := ParseDeadline(*w.NotAfter)
		if err != nil {
			return Command{}, err
		}
		cmd.NotAfter = t
	}
	cmd.QuietHours = w.QuietHours
	cmd.FrequencyCap = w.FrequencyCap
	return cmd, cmd.Validate()
}

// ParseDeadline reads a not_after value: an RFC 3339 time, which always
// names its zone ("Z" or an offset), so a deadline never depends on the
// worker's local time zone.
func ParseDeadline(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, Invalidf("\"not_after\" is %q: want an RFC 3339 time with a zone, such as 2026-11-25T09:15:00Z or 2026-11-25T10:15:00+01:00", Clip(s))
	}
	return t, nil
}

// Validate checks the fields' values (not the subject). Publish calls it, so
// a bad command is refused before it reaches the stream.
func (c Command) Validate() error {
	switch {
	case c.ID == "":
		return Invalidf("\"id\" is empty: it is the idempotency key and needs 1 to %d bytes", MaxIDBytes)
	case len(c.ID) > MaxIDBytes:
		return Invalidf("\"id\" is %d bytes; the limit is %d", len(c.ID), MaxIDBytes)
	case !c.Type.Known():
		return Invalidf("unknown command type %q: want one of %s", c.Type, typeList)
	case c.ChatID == "":
		return Invalidf("\"chat_id\" is empty")
	case len(c.ChatID) > MaxChatIDBytes:
		return Invalidf("\"chat_id\" is %d bytes; the limit is %d", len(c.ChatID), MaxChatIDBytes)
	case c.ChatID == "." || c.ChatID == "..":
		return Invalidf("\"chat_id\" %q is not a chat ID", c.ChatID)
	case !utf8.ValidString(c.ID) || !utf8.ValidString(c.ChatID) || !utf8.ValidString(c.Content):
		return Invalidf("the command's text fields must be valid UTF-8")
	}
	spec, _ := Lookup(c.Type)
	switch {
	case spec.Content && strings.TrimSpace(c.Content) == "":
		return Invalidf("\"content\" is empty: %s %s command needs text", article(c.Type), c.Type)
	case spec.Content && len(c.Content) > MaxContentBytes:
		return Invalidf("\"content\" is %d bytes; the limit is %d (16 KiB)", len(c.Content), MaxContentBytes)
	case !spec.Content && c.Content != "":
		return Invalidf("%s %s command takes no \"content\"", article(c.Type), c.Type)
	}
	if c.From != "" {
		if !spec.From {
			return Invalidf("\"from\" is only for %s commands, not %s", fromTypes, c.Type)
		}
		if c.From != FromClient && c.From != FromAgent && c.From != FromBot {
			return Invalidf("\"from\" is %q: want %s, %s or %s", c.From, FromClient, FromAgent, FromBot)
		}
	}
	if y := c.NotAfter.Year(); !c.NotAfter.IsZero() && (y < 1 || y > 9999) {
		return Invalidf("\"not_after\" is in the year %d: RFC 3339 has years 1 to 9999", y)
	}
	if c.QuietHours != nil {
		if err := c.QuietHours.Validate(); err != nil {
			return err
		}
	}
	if c.FrequencyCap != nil {
		if c.Type != TypeSend {
			return Invalidf("\"frequency_cap\" is only for send commands, not %s: it bounds the messages a chat is sent", c.Type)
		}
		if err := c.FrequencyCap.Validate(); err != nil {
			return err
		}
	}
	if len(c.Metadata) > 0 {
		if t := bytes.TrimLeft(c.Metadata, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			if !bytes.Equal(bytes.TrimSpace(c.Metadata), []byte("null")) {
				return Invalidf("\"metadata\" must be a JSON object")
			}
		}
	}
	return nil
}

// Hash identifies the command's content: the same id with a different hash
// is a conflict. It covers every field in a fixed encoding, so the order of
// fields and white space in the published JSON do not matter.
//
// NotAfter, QuietHours and FrequencyCap are left out on purpose: a deadline says when
// the effect may happen, not what it is. The idempotency store keeps the hash of a failed
// command, so a hash that covered the deadline would turn the replay of an
// expired command with a new deadline into a conflict, and a command
// republished with a later deadline after it succeeded into a conflict
// rather than the duplicate it is.
func (c Command) Hash() string {
	// One buffer, on the stack for a usual command, and one digest: this
	// runs for every command. The encoding must never change: the
	// idempotency store keeps these hashes, and a command published before
	// an upgrade would conflict with itself after it (TestHashIsStable).
	var stack [512]byte
	b := stack[:0]
	for _, f := range [...]string{c.ID, string(c.Type), c.ChatID, c.Content, c.From, c.SiteToken} {
		b = strconv.AppendInt(b, int64(len(f)), 10) // length-prefixed: fields cannot run together
		b = append(b, ':')
		b = append(b, f...)
	}
	if len(c.Metadata) > 0 {
		var buf bytes.Buffer
		if json.Compact(&buf, c.Metadata) == nil {
			b = append(b, buf.Bytes()...)
		} else {
			b = append(b, c.Metadata...)
		}
	}
	if c.Project != "" {
		// A v2 command's project, from its subject: the same id and body in
		// two projects are two commands, and the second is a conflict, not
		// a duplicate carrying the first project's response. A NUL never
		// ends compact JSON, so this cannot be mistaken for metadata; v1
		// hashes are unchanged.
		b = append(b, "\x00project:"...)
		b = append(b, c.Project...)
	}
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// checkDepth refuses JSON nested deeper than MaxJSONDepth without decoding
// it. Strings are skipped so that brackets inside them do not count.
func checkDepth(data []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > MaxJSONDepth {
				return Invalidf("the command is nested more than %d levels deep", MaxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// jsonProblem turns encoding/json's errors into a sentence about the
// command, without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q should be %s, not a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("it is a JSON %s", typ.Value)
	case errors.Is(err, io.EOF):
		return "it is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends too early"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field " + f + " (fields are id, type, chat_id, content, from, site_token, metadata, not_after, quiet_hours, frequency_cap; quiet_hours has start, end and tz; frequency_cap has max and per)"
	}
	return strings.TrimPrefix(msg, "json: ")
}

func jsonKind(k string) string {
	switch k {
	case "ptr", "string":
		return "a string"
	case "slice":
		return "an object"
	}
	return k
}

// NewID returns a random UUID (version 4), the form of id we suggest.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
