package contract

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Type is the kind of a command. It is the <type> token of the subject.
type Type string

const (
	TypeSend    Type = "send"
	TypeNote    Type = "note"
	TypeArchive Type = "archive"
	// TypeExport exports one conversation to the worker's export target
	// (the contract's "export, once conversation export exists").
	TypeExport Type = "export"
)

// Spec describes one command type for everything that reads commands:
// decoding and validation here, the schema tests, the command line, and the
// worker's executor, which keeps the one API call per type beside its
// client (package execute) and is tested to cover exactly these types.
type Spec struct {
	Type Type
	// Body is the typed command an app builds for this type, as its zero
	// value: its fields are the fields the type takes.
	Body Commander
	// Content: the command carries text in "content" (required, not only
	// white space, at most MaxContentBytes). Without it "content" is refused.
	Content bool
	// From: the command may name its sender in "from" (FromClient,
	// FromAgent or FromBot). Without it "from" is refused.
	From bool
	// Verb is the worker's subcommand that publishes the type, "" for none;
	// Help is its line in `worker help`.
	Verb, Help string
}

// specs is the table of command types: adding a type starts here (see
// docs/how-it-works.md for the other files it touches).
var specs = [...]Spec{
	{Type: TypeSend, Body: Send{}, Content: true, From: true, Verb: "send", Help: "publish a send command   (--chat, --content, --id)"},
	{Type: TypeNote, Body: Note{}, Content: true, Verb: "note", Help: "publish a note command   (--chat, --content, --id)"},
	{Type: TypeArchive, Body: Archive{}, Verb: "archive", Help: "publish an archive command (--chat, --id)"},
	// No verb: `worker export` is the bulk export of conversations, which
	// reads the API directly rather than publishing commands.
	{Type: TypeExport, Body: Export{}},
}

// Specs returns the table of command types.
func Specs() []Spec { return slices.Clone(specs[:]) }

// Lookup returns the Spec of t; ok is false for a type the worker does not
// execute.
func Lookup(t Type) (Spec, bool) {
	for _, s := range specs {
		if s.Type == t {
			return s, true
		}
	}
	return Spec{}, false
}

// Types returns the command types the worker executes.
func Types() []Type {
	out := make([]Type, len(specs))
	for i, s := range specs {
		out[i] = s.Type
	}
	return out
}

// Known reports whether the worker can execute commands of this type.
func (t Type) Known() bool {
	_, ok := Lookup(t)
	return ok
}

// typeList names the types for an error message: "send, note, archive or
// export".
var typeList = orList(Types())

// fromTypes names the types that take "from": "send".
var fromTypes = orList(typesWhere(func(s Spec) bool { return s.From }))

func typesWhere(keep func(Spec) bool) []Type {
	var out []Type
	for _, s := range specs {
		if keep(s) {
			out = append(out, s.Type)
		}
	}
	return out
}

// orList joins names as "a, b or c".
func orList[T ~string](names []T) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return string(names[0])
	}
	var b strings.Builder
	for i, n := range names[:len(names)-1] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(n))
	}
	return b.String() + " or " + string(names[len(names)-1])
}

// article is the indefinite article of a type's name in a message.
func article(t Type) string {
	if t != "" && strings.ContainsRune("aeiou", rune(t[0])) {
		return "an"
	}
	return "a"
}

// Commander is implemented by the typed commands Send, Note, Archive and
// Export, and by Command itself.
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
	// optional: no API call while the visitor's local time is in the window
	QuietHours *QuietHours
	// optional: at most Max sends under a cap to the chat per Per (class capped)
	FrequencyCap *FrequencyCap
}

// Note leaves a private note on a conversation.
type Note struct {
	ID, ChatID, Content, SiteToken string
	Metadata                       json.RawMessage
	NotAfter                       time.Time
	QuietHours                     *QuietHours
}

// Archive archives a conversation.
type Archive struct {
	ID, ChatID, SiteToken string
	Metadata              json.RawMessage
	NotAfter              time.Time
	QuietHours            *QuietHours
}

// Export exports one conversation to the worker's export target; its result
// says where the export went.
type Export struct {
	ID, ChatID, SiteToken string
	Metadata              json.RawMessage
	NotAfter              time.Time
	QuietHours            *QuietHours
}

func (x Export) Command() Command {
	return Command{ID: x.ID, Type: TypeExport, ChatID: x.ChatID, SiteToken: x.SiteToken, Metadata: x.Metadata, NotAfter: x.NotAfter, QuietHours: x.QuietHours}
}

func (s Send) Command() Command {
	return Command{ID: s.ID, Type: TypeSend, ChatID: s.ChatID, Content: s.Content, From: s.From, SiteToken: s.SiteToken, Metadata: s.Metadata, NotAfter: s.NotAfter, QuietHours: s.QuietHours, FrequencyCap: s.FrequencyCap}
}

func (n Note) Command() Command {
	return Command{ID: n.ID, Type: TypeNote, ChatID: n.ChatID, Content: n.Content, SiteToken: n.SiteToken, Metadata: n.Metadata, NotAfter: n.NotAfter, QuietHours: n.QuietHours}
}

func (a Archive) Command() Command {
	return Command{ID: a.ID, Type: TypeArchive, ChatID: a.ChatID, SiteToken: a.SiteToken, Metadata: a.Metadata, NotAfter: a.NotAfter, QuietHours: a.QuietHours}
}

// Command lets a Command be published as it is.
func (c Command) Command() Command { return c }
