package chat

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Agent is the team member who wrote a message.
type Agent struct {
	ID        string `json:"id"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Email     string `json:"email,omitempty"`
	Avatar    string `json:"avatar,omitempty"`
}

// Message is one message of a conversation. Notes are messages with
// Private set.
type Message struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	From      string            `json:"from"`
	Content   string            `json:"content"`
	Timestamp int64             `json:"timestamp"` // epoch milliseconds
	PersonID  string            `json:"person_id,omitempty"`
	Private   bool              `json:"private"`
	Entities  []json.RawMessage `json:"entities,omitempty"`
	Data      json.RawMessage   `json:"data,omitempty"`
	Agent     *Agent            `json:"agent,omitempty"`
	Bot       json.RawMessage   `json:"bot,omitempty"`
	Session   json.RawMessage   `json:"session,omitempty"`
}

// Time returns the message's timestamp as a time.Time.
func (m Message) Time() time.Time { return time.UnixMilli(m.Timestamp) }

// Latest is the most recent activity of a chat.
type Latest struct {
	Timestamp int64    `json:"timestamp"`
	Message   *Message `json:"message,omitempty"`
}

// ReadDelivered holds when one side last read and received the chat (ms).
type ReadDelivered struct {
	Read      *int64 `json:"read,omitempty"`
	Delivered *int64 `json:"delivered,omitempty"`
}

// Chat is a conversation; its ID is the visitor's person_id. Raw holds the
// conversation as returned, so fields this package does not know, or whose
// type it did not expect, are not lost.
type Chat struct {
	ID string `json:"id"`
	// Archived is nil when active and epoch ms when archived, as assumed;
	// an answer of another type (true, a date string) leaves it nil with a
	// Warning, and Raw has what the API said.
	Archived *int64          `json:"archived"`
	Latest   *Latest         `json:"latest,omitempty"`
	Agent    *ReadDelivered  `json:"agent,omitempty"`
	Client   *ReadDelivered  `json:"client,omitempty"`
	Language string          `json:"language,omitempty"`
	Links    json.RawMessage `json:"_links,omitempty"`
	Raw      json.RawMessage `json:"-"`
}

type chatFields Chat // Chat without its methods

// UnmarshalJSON decodes the chat and keeps a copy of its raw JSON.
func (c *Chat) UnmarshalJSON(b []byte) error {
	var v chatFields
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = Chat(v)
	c.keepRaw(b)
	return nil
}

// MarshalJSON returns Raw when set, so a decoded chat re-encodes as received.
func (c Chat) MarshalJSON() ([]byte, error) {
	if len(c.Raw) > 0 {
		return c.Raw, nil
	}
	return json.Marshal(chatFields(c))
}

func (c *Chat) keepRaw(b []byte) { c.Raw = append(json.RawMessage(nil), b...) }

// FeedItem is a message or an event of a chat's feed. Events keep their
// Type (for example "event") and Event name; Raw holds the item as returned,
// so fields this package does not know are not lost.
type FeedItem struct {
	Message
	Event string          `json:"event,omitempty"`
	Raw   json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the item and keeps a copy of its raw JSON.
func (f *FeedItem) UnmarshalJSON(b []byte) error {
	var v struct {
		Message
		Event string `json:"event,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	f.Message, f.Event = v.Message, v.Event
	f.keepRaw(b)
	return nil
}

func (f *FeedItem) keepRaw(b []byte) { f.Raw = append(json.RawMessage(nil), b...) }

// MarshalJSON returns Raw when set, so a decoded item re-encodes as received.
func (f FeedItem) MarshalJSON() ([]byte, error) {
	if len(f.Raw) > 0 {
		return f.Raw, nil
	}
	return json.Marshal(struct {
		Message
		Event string `json:"event,omitempty"`
	}{f.Message, f.Event})
}

// ChatList is the body of GET /chats.
type ChatList struct {
	List []Chat `json:"list"`
}

// FeedList is the body of GET /chats/{id}/feed.
type FeedList struct {
	List []FeedItem `json:"list"`
}

// MessageList is the body of GET /chats/{id}/messages.
type MessageList struct {
	List []Message `json:"list"`
}

// Senders accepted in SendMessageRequest.From.
const (
	FromClient = "client"
	FromAgent  = "agent"
	FromBot    = "bot"
)

// SendMessageRequest is the body of POST /chats/{id}/messages. From
// defaults to "client", as in the API's documented example.
type SendMessageRequest struct {
	Content string `json:"content"`
	From    string `json:"from,omitempty"`
}

// NoteRequest is the body of POST /chats/{id}/notes.
type NoteRequest struct {
	Content string `json:"content"`
}

// ListOptions selects a page of chats or of a feed. Offset and Count become
// limit="offset,count" (Count 0 means the API default); From and To, when
// set, are sent as epoch milliseconds.
type ListOptions struct {
	Offset, Count int
	From, To      time.Time
}

func (o ListOptions) values() map[string][]string {
	q := map[string][]string{}
	switch {
	case o.Offset > 0:
		n := o.Count
		if n <= 0 {
			n = 10
		}
		q["limit"] = []string{strconv.Itoa(o.Offset) + "," + strconv.Itoa(n)}
	case o.Count > 0:
		q["limit"] = []string{strconv.Itoa(o.Count)}
	}
	if !o.From.IsZero() {
		q["from"] = []string{strconv.FormatInt(o.From.UnixMilli(), 10)}
	}
	if !o.To.IsZero() {
		q["to"] = []string{strconv.FormatInt(o.To.UnixMilli(), 10)}
	}
	return q
}

// MessagesOptions selects a page of messages (newest first); zero values
// leave the API defaults (limit 20, offset 0).
type MessagesOptions struct {
	Limit, Offset int
}

// RateLimit is the API's rate budget as reported by the X-RateLimit-*
// headers of a response. Known is false when the headers were absent.
type RateLimit struct {
	Cost      int           // units this call cost
	Limit     int           // units per minute
	Remaining int           // units left
	Full      time.Duration // until the budget is full again
	Known     bool
}

// Bounds of the X-RateLimit-* values: a hostile or broken header cannot
// overflow the limiter's arithmetic (burst = calls × cost) or go negative.
const (
	maxRateValue = 1 << 30
	maxRateFull  = 24 * time.Hour
)

// parseRateLimit reads the X-RateLimit-* headers. Values are clamped to
// [0, maxRateValue] (Full to [0, maxRateFull]); unparsable ones read as 0.
func parseRateLimit(h http.Header) RateLimit {
	num := func(name string) (float64, bool) {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return 0, false
		}
		f, err := strconv.ParseFloat(v, 64)
		if (err != nil && !errors.Is(err, strconv.ErrRange)) || math.IsNaN(f) {
			return 0, false
		}
		return f, true
	}
	clampInt := func(f float64) int {
		return int(min(max(f, 0), maxRateValue))
	}
	var rl RateLimit
	// The names are written as http.Header keeps them (canonical), so that
	// looking them up allocates nothing: this runs on every response.
	cost, _ := num("X-Ratelimit-Cost")
	limit, okL := num("X-Ratelimit-Limit")
	remaining, okR := num("X-Ratelimit-Remaining")
	rl.Cost, rl.Limit, rl.Remaining = clampInt(cost), clampInt(limit), clampInt(remaining)
	if full, ok := num("X-Ratelimit-Full"); ok && full > 0 {
		if full >= maxRateFull.Seconds() {
			rl.Full = maxRateFull
		} else {
			rl.Full = time.Duration(full * float64(time.Second))
		}
	}
	rl.Known = okL && okR && rl.Limit > 0
	return rl
}
