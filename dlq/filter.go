package dlq

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
)

// Filter selects dead letters. The zero value selects all of them. Types and
// ChatID narrow the subjects read from the stream; the rest is checked on
// each dead letter.
type Filter struct {
	// Project: only the dead letters of this project's commands (contract
	// v2, under chat.dlq.<project>.>); empty: every project's and the v1
	// ones.
	Project string
	Classes []contract.Class // any of these; empty: any class
	Types   []string         // subject <type> tokens (a command type, or invalid); empty: any
	ChatID  string           // exact chat ID
	ID      string           // exact command id
	Since   time.Time        // dead at or after (inclusive)
	Until   time.Time        // dead before (exclusive)
	Limit   int              // at most this many, oldest first; 0: no limit
}

// Values are a Filter as typed on a command line. ParseFilter checks them.
type Values struct {
	Class, Type, Chat, ID, Since, Until string
	Project                             string
	Limit                               int
}

// deadTypes are the types a dead-letter subject can carry: the command
// types, and "invalid" for messages whose command subject could not be read.
func deadTypes() []string {
	var ts []string
	for _, t := range contract.Types() {
		ts = append(ts, string(t))
	}
	return append(ts, "invalid")
}

// ParseFilter turns flag values into a Filter. now anchors relative times
// ("2h" means two hours before now). Each error names the flag and what it
// wants.
func ParseFilter(v Values, now time.Time) (Filter, error) {
	var f Filter
	if v.Project != "" {
		if err := contract.CheckProjectName(v.Project); err != nil {
			return Filter{}, fmt.Errorf("--project: %v", err)
		}
		f.Project = v.Project
	}
	for _, c := range splitList(v.Class) {
		if !slices.Contains(contract.DeadLetterClasses(), contract.Class(c)) {
			return Filter{}, fmt.Errorf("--class %q: want one of %s (comma separated for several)", c, joinClasses())
		}
		if !slices.Contains(f.Classes, contract.Class(c)) {
			f.Classes = append(f.Classes, contract.Class(c))
		}
	}
	for _, t := range splitList(v.Type) {
		if !slices.Contains(deadTypes(), t) {
			return Filter{}, fmt.Errorf("--type %q: want one of %s (comma separated for several)", t, strings.Join(deadTypes(), ", "))
		}
		if !slices.Contains(f.Types, t) {
			f.Types = append(f.Types, t)
		}
	}
	if v.Chat != "" {
		if len(v.Chat) > contract.MaxChatIDBytes {
			return Filter{}, fmt.Errorf("--chat is %d bytes; a chat ID has at most %d", len(v.Chat), contract.MaxChatIDBytes)
		}
		f.ChatID = v.Chat
	}
	if len(v.ID) > contract.MaxIDBytes {
		return Filter{}, fmt.Errorf("--id is %d bytes; a command id has at most %d", len(v.ID), contract.MaxIDBytes)
	}
	f.ID = v.ID
	var err error
	if f.Since, err = parseTime("--since", v.Since, now); err != nil {
		return Filter{}, err
	}
	if f.Until, err = parseTime("--until", v.Until, now); err != nil {
		return Filter{}, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return Filter{}, fmt.Errorf("--since %s is not before --until %s: nothing could match", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	if v.Limit < 0 {
		return Filter{}, fmt.Errorf("--limit %d: want 0 (no limit) or more", v.Limit)
	}
	f.Limit = v.Limit
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.ToLower(p))
		}
	}
	return out
}

func joinClasses() string {
	classes := contract.DeadLetterClasses()
	s := make([]string, len(classes))
	for i, c := range classes {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

var daysAgo = regexp.MustCompile(`^(\d+)d$`)

// parseTime reads an absolute time (RFC 3339, or a date and time without a
// zone, taken as UTC) or a duration before now (90m, 2h, 7d).
func parseTime(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if m := daysAgo.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n <= 100000 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%s %q: a duration means that long ago, so it must be positive", flag, s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want a time (2026-05-01, 2026-05-01T14:00:00Z) or how long ago (90m, 2h, 7d)", flag, s)
}

// String is the filter as flags, for messages such as "no dead letters
// match --class exhausted".
func (f Filter) String() string {
	var parts []string
	if f.Project != "" {
		parts = append(parts, "--project "+f.Project)
	}
	if len(f.Classes) > 0 {
		s := make([]string, len(f.Classes))
		for i, c := range f.Classes {
			s[i] = string(c)
		}
		parts = append(parts, "--class "+strings.Join(s, ","))
	}
	if len(f.Types) > 0 {
		parts = append(parts, "--type "+strings.Join(f.Types, ","))
	}
	if f.ChatID != "" {
		parts = append(parts, "--chat "+strconv.Quote(f.ChatID))
	}
	if f.ID != "" {
		parts = append(parts, "--id "+strconv.Quote(f.ID))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "--since "+f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "--until "+f.Until.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		parts = append(parts, "--limit "+strconv.Itoa(f.Limit))
	}
	if len(parts) == 0 {
		return "(no filter)"
	}
	return strings.Join(parts, " ")
}

// subjects are the stream subjects that can hold a matching dead letter:
// the project's, or without one the v1 subjects and every project's.
func (f Filter) subjects(s contract.Subjects) []string {
	if f.Project != "" {
		return f.subjectsIn(s.For(f.Project))
	}
	s = s.For("")
	if len(f.Types) == 0 && f.ChatID == "" || slices.Contains(f.Types, "invalid") && f.ChatID == "" {
		// Every dead letter; match narrows to the types. The server refuses
		// overlapping filters, such as chat.dlq.invalid.> beside
		// chat.dlq.*.invalid.>.
		return []string{s.DeadLettersFilter()}
	}
	// A v2 subject has one token more, for its project.
	return append(f.subjectsIn(s), f.subjectsIn(s.For("*"))...)
}

// subjectsIn are the subjects of one version (and project) that can hold a
// matching dead letter.
func (f Filter) subjectsIn(s contract.Subjects) []string {
	base := strings.TrimSuffix(s.DeadLettersFilter(), ">")
	chat := "*"
	if f.ChatID != "" {
		chat = contract.Token(f.ChatID)
	}
	if len(f.Types) == 0 {
		if f.ChatID == "" {
			return []string{s.DeadLettersFilter()}
		}
		return []string{base + "*." + chat}
	}
	out := make([]string, 0, len(f.Types))
	for _, t := range f.Types {
		if t == "invalid" && f.ChatID == "" {
			// Unreadable command subjects keep all their tokens here.
			out = append(out, base+"invalid.>")
			continue
		}
		out = append(out, base+t+"."+chat)
	}
	return out
}

// match checks what the subjects could not.
func (f Filter) match(e Entry) bool {
	switch {
	case f.Project != "" && e.Project != f.Project,
		len(f.Types) > 0 && !slices.Contains(f.Types, e.Type),
		f.ChatID != "" && e.ChatID != f.ChatID:
		return false
	}
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, e.Class()) {
		return false
	}
	if f.ID != "" && e.ID != f.ID {
		return false
	}
	t := e.Time()
	if !f.Since.IsZero() && t.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !t.Before(f.Until) {
		return false
	}
	return true
}

// ClassList names the classes a filter accepts, for help texts.
func ClassList() string { return joinClasses() }

// TypeList names the types a filter accepts, for help texts.
func TypeList() string { return strings.Join(deadTypes(), ", ") }
