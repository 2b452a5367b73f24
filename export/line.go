package export

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/chatworker/worker/chat"
)

// Cursor says how far a conversation was exported: every feed item with a
// timestamp before TS, and the items at exactly TS whose ids are in IDs.
// Timestamps are epoch milliseconds, as in the API. Keeping the ids at TS
// means two items in the same millisecond are neither lost nor doubled.
type Cursor struct {
	TS  int64    `json:"ts"`
	IDs []string `json:"ids,omitempty"`
}

// covers reports whether the cursor already accounts for an item.
func (c *Cursor) covers(ts int64, id string) bool {
	if c == nil {
		return false
	}
	return ts < c.TS || (ts == c.TS && slices.Contains(c.IDs, id))
}

// after reports whether c is further than o (nil is the start).
func (c *Cursor) after(o *Cursor) bool {
	switch {
	case c == nil:
		return false
	case o == nil:
		return true
	case c.TS != o.TS:
		return c.TS > o.TS
	}
	return len(c.IDs) > len(o.IDs)
}

// Line is one line of an export: one conversation with the messages, notes
// and events it gained since After, oldest first. After and Through key the
// line: (chat id, After) names what it continues from, Through is the
// conversation's checkpoint once the line is stored.
type Line struct {
	// Project is the v2 project of an export made on demand (an export
	// command on chat.commands.<project>.export.<chat>); absent otherwise.
	Project    string            `json:"project,omitempty"`
	ChatID     string            `json:"chat_id"`
	Chat       *chat.Chat        `json:"chat,omitempty"`
	After      *Cursor           `json:"after"` // null: from the beginning
	Through    Cursor            `json:"through"`
	ExportedAt time.Time         `json:"exported_at"`
	Messages   []json.RawMessage `json:"messages"`
	Notes      []json.RawMessage `json:"notes"`
	Events     []json.RawMessage `json:"events"`
}

// Items is the number of feed items on the line.
func (l *Line) Items() int { return len(l.Messages) + len(l.Notes) + len(l.Events) }

// newLine sorts items oldest first into messages, notes and events, and
// computes the cursor that follows them. items must not be empty.
func newLine(c *chat.Chat, after *Cursor, items []chat.FeedItem, now time.Time) *Line {
	slices.SortStableFunc(items, func(a, b chat.FeedItem) int {
		switch {
		case a.Timestamp < b.Timestamp:
			return -1
		case a.Timestamp > b.Timestamp:
			return 1
		}
		return 0
	})
	l := &Line{ChatID: c.ID, Chat: c, After: after, ExportedAt: now.UTC(),
		Messages: []json.RawMessage{}, Notes: []json.RawMessage{}, Events: []json.RawMessage{}}
	for _, it := range items {
		raw, err := json.Marshal(it)
		if err != nil {
			continue // FeedItem marshals its raw JSON, which decoded: cannot fail
		}
		switch {
		case it.Type == "message" && it.Private:
			l.Notes = append(l.Notes, raw)
		case it.Type == "message":
			l.Messages = append(l.Messages, raw)
		default:
			l.Events = append(l.Events, raw)
		}
	}
	last := items[len(items)-1].Timestamp
	l.Through.TS = last
	if after != nil && after.TS == last {
		l.Through.IDs = slices.Clone(after.IDs)
	}
	for _, it := range items {
		if it.Timestamp == last {
			l.Through.IDs = append(l.Through.IDs, it.ID)
		}
	}
	return l
}
