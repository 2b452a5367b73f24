package contract

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of a frequency cap.
const (
	// MaxCapSends is the largest Max a cap may have: the worker keeps at
	// most this many sends of a chat.
	MaxCapSends = 100
	// MaxCapWindow is the longest Per a cap may have: the worker forgets a
	// chat's sends after it.
	MaxCapWindow = 30 * 24 * time.Hour
)

// FrequencyCap bounds the automated sends to one chat: a send command under
// it runs only while fewer than Max sends under a cap succeeded for the chat
// in the last Per; otherwise it becomes a dead letter of class capped,
// without an API call (a replay sends it anyway). Only send commands take
// one. Like quiet_hours it says when, not what: it is not part of Hash.
type FrequencyCap struct {
	// Max is 1 to MaxCapSends.
	Max int `json:"max"`
	// Per is the window: a whole number of minutes, hours or days, "90m",
	// "24h", "7d", at most 30 days.
	Per string `json:"per"`
}

// Validate checks c's count and window.
func (c FrequencyCap) Validate() error {
	_, err := c.Window()
	return err
}

// Window is c's Per as a duration; an error of class invalid says what is
// wrong with c.
func (c FrequencyCap) Window() (time.Duration, error) {
	if c.Max < 1 || c.Max > MaxCapSends {
		return 0, Invalidf("\"frequency_cap\".max is %d: want 1 to %d sends", c.Max, MaxCapSends)
	}
	d, ok := parseCapWindow(c.Per)
	if !ok || d > MaxCapWindow {
		return 0, Invalidf("\"frequency_cap\".per is %q: want a whole number of minutes, hours or days up to 30 days, such as 90m, 24h or 7d", Clip(c.Per))
	}
	return d, nil
}

func parseCapWindow(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 6 || s[0] == '0' {
		return 0, false
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	n, err := strconv.Atoi(s[:len(s)-1])
	if unit == 0 || err != nil || n < 1 || strings.ContainsAny(s[:len(s)-1], "+-") {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// ParseFrequencyCap reads the command line's form of a cap, MAX/PER
// ("3/24h").
func ParseFrequencyCap(s string) (FrequencyCap, error) {
	n, per, ok := strings.Cut(s, "/")
	max, err := strconv.Atoi(n)
	if !ok || err != nil {
		return FrequencyCap{}, Invalidf("frequency cap %q: want MAX/PER, such as 3/24h", Clip(s))
	}
	c := FrequencyCap{Max: max, Per: per}
	return c, c.Validate()
}

// String is c in the command line's form, 3/24h.
func (c FrequencyCap) String() string { return fmt.Sprintf("%d/%s", c.Max, c.Per) }

// Capped is the capped error of a command that sent counts sends to its chat
// in the window of c.
func Capped(c FrequencyCap, sent int, source string) *Error {
	return &Error{Class: ClassCapped, Msg: fmt.Sprintf(
		"its chat was sent %d automated messages in the last %s, and its frequency cap (%s, %s) allows %d; `worker dlq replay` sends it anyway",
		sent, c.Per, c, source, c.Max)}
}
