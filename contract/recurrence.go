package contract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Recurrence is how a recurring schedule repeats: every Every (at least
// MinEvery), or at the times a six-field cron expression (seconds first)
// matches, read in the zone TZ. It is the Nats-Schedule header of the
// schedule, which NATS evaluates; this package reads it to validate a
// schedule before it is stored, to say when it fires next, and to name each
// firing.
type Recurrence struct {
	Every time.Duration
	Cron  string
	// TZ is an IANA zone name (Europe/London) for Cron; "" is UTC. NATS
	// does not take a zone for Every.
	TZ string
}

// MinEvery is the shortest interval NATS repeats a schedule at.
const MinEvery = time.Second

// Headers of a recurring schedule, copied by NATS onto every command it
// fires, so the worker can tell which firing a command is (see Firing).
// Nats-Schedule itself is stripped from a fired command.
const (
	HeaderRecurrence   = "Chat-Recurrence"           // the Nats-Schedule pattern
	HeaderRecurrenceTZ = "Chat-Recurrence-Time-Zone" // Nats-Schedule-Time-Zone
)

// Headers NATS puts on the command a schedule fires.
const (
	HeaderScheduler    = "Nats-Scheduler"     // the schedule's subject
	HeaderScheduleNext = "Nats-Schedule-Next" // "purge" for a one-shot schedule, else the next firing
)

// ParseRecurrence reads a Nats-Schedule pattern ("@every 24h", a cron
// expression, or @hourly, @daily, @weekly, @monthly, @yearly) and its zone.
func ParseRecurrence(pattern, tz string) (Recurrence, error) {
	if d, ok := strings.CutPrefix(pattern, "@every "); ok {
		every, err := time.ParseDuration(d)
		if err != nil {
			return Recurrence{}, Invalidf("%q: want @every and a duration such as 24h or 90m", Clip(pattern))
		}
		r := Recurrence{Every: every, TZ: tz}
		return r, r.Validate()
	}
	r := Recurrence{Cron: pattern, TZ: tz}
	return r, r.Validate()
}

// Validate checks that r is a recurrence NATS accepts.
func (r Recurrence) Validate() error {
	switch {
	case r.Every != 0 && r.Cron != "":
		return Invalidf("a recurrence is an interval or a cron expression, not both")
	case r.Every != 0 && r.TZ != "":
		return Invalidf("a time zone goes with a cron expression, not with an interval (%s is the same in every zone)", r.Every)
	case r.Every != 0 && (r.Every < MinEvery || r.Every%time.Second != 0):
		return Invalidf("the interval %s: want whole seconds, at least %s", r.Every, MinEvery)
	case r.Every != 0:
		return nil
	case r.Cron == "":
		return Invalidf("a recurrence needs an interval or a cron expression")
	}
	_, err := r.cron()
	return err
}

// Pattern is r as the Nats-Schedule header's value.
func (r Recurrence) Pattern() string {
	if r.Every != 0 {
		return "@every " + r.Every.String()
	}
	return r.Cron
}

func (r Recurrence) String() string {
	if r.TZ != "" {
		return r.Pattern() + " (" + r.TZ + ")"
	}
	return r.Pattern()
}

// Next is the first firing of a cron recurrence after t, in whole seconds;
// zero for an interval (its firings count from when it was stored: see
// NextEvery) or when none comes within five years.
func (r Recurrence) Next(t time.Time) time.Time {
	c, err := r.cron()
	if err != nil || r.Every != 0 {
		return time.Time{}
	}
	return c.next(t)
}

// NextEvery is the first firing after now of an interval recurrence stored
// at stored. NATS counts each firing from the one before, and after an
// outage fires once and counts from then, so this is exact while NATS keeps
// time and an estimate after an outage.
func (r Recurrence) NextEvery(stored, now time.Time) time.Time {
	if r.Every <= 0 {
		return time.Time{}
	}
	first := stored.Round(time.Second).Add(r.Every)
	if first.After(now) {
		return first.UTC()
	}
	n := now.Sub(first)/r.Every + 1
	return first.Add(n * r.Every).UTC()
}

// Prev is the firing of r that came last before next: for the command NATS
// fired with Nats-Schedule-Next: next, the time it was due. NATS computes
// next from the due time of the firing it publishes (or from when it
// published it, after an outage), so Prev names each firing once.
func (r Recurrence) Prev(next time.Time) time.Time {
	if r.Every != 0 {
		return next.Add(-r.Every).UTC()
	}
	c, err := r.cron()
	if err != nil {
		return time.Time{}
	}
	// Search forward from ever further back: next is cheap, and the window
	// that first holds a firing holds few.
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
		t := c.next(next.Add(-w - time.Second))
		if t.IsZero() || !t.Before(next) {
			continue
		}
		for {
			n := c.next(t)
			if n.IsZero() || !n.Before(next) {
				return t.UTC()
			}
			t = n
		}
	}
	return time.Time{}
}

// FiringID is the id of the command a recurring schedule with the id
// scheduleID fires when it is due at firedAt: the schedule's id, "@" and the
// time in UTC to the second. Each firing is then its own command to the
// idempotency store, and the same firing delivered again is the same.
func FiringID(scheduleID string, firedAt time.Time) string {
	return scheduleID + "@" + firedAt.UTC().Format(firingLayout)
}

const firingLayout = "2006-01-02T15:04:05Z"

// MaxScheduleIDBytes bounds the id of a recurring schedule, so that each
// firing's id (FiringID) stays within MaxIDBytes.
const MaxScheduleIDBytes = MaxIDBytes - len("@"+firingLayout)

// Firing reports whether a command message with headers h, stored in the
// stream at stored, is the firing of a recurring schedule, and when that
// firing was due. Only NATS can set Nats-Schedule-Next to a time (it refuses
// the header from publishers), so a command published directly, or fired
// by a one-shot schedule ("purge"), is not one. The due time comes from the
// recurrence the schedule carries (HeaderRecurrence); a schedule published
// without it (by hand) gets the time the firing was stored, to the second.
func Firing(h map[string][]string, stored time.Time) (firedAt time.Time, ok bool) {
	first := func(name string) string {
		if v := h[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	nextV := first(HeaderScheduleNext)
	if first(HeaderScheduler) == "" || nextV == "" || nextV == "purge" {
		return time.Time{}, false
	}
	if next, err := time.Parse(time.RFC3339Nano, nextV); err == nil {
		if r, err := ParseRecurrence(first(HeaderRecurrence), first(HeaderRecurrenceTZ)); err == nil {
			if t := r.Prev(next); !t.IsZero() {
				return t, true
			}
		}
	}
	return stored.Truncate(time.Second).UTC(), true
}

// DecodeMessage is Decode for a command message as the worker takes it from
// the stream, with its headers and the time the stream stored it. The
// firing of a recurring schedule (see Firing) becomes its own command:
// its id is FiringID(the schedule's id, the firing's due time), and firing
// is true. Everything that decodes a delivered command calls this, so that
// every path names a firing alike.
func DecodeMessage(s Subjects, subject string, data []byte, h map[string][]string, stored time.Time) (cmd Command, firing bool, err error) {
	cmd, err = Decode(s, subject, data)
	if err != nil {
		return cmd, false, err
	}
	if err := checkScheduler(s, cmd, h); err != nil {
		return Command{}, false, err
	}
	due, ok := Firing(h, stored)
	if !ok {
		return cmd, false, nil
	}
	if len(cmd.ID) > MaxScheduleIDBytes {
		return Command{}, false, Invalidf("the recurring schedule's id is %d bytes: each firing's id (id@time) needs it within %d", len(cmd.ID), MaxScheduleIDBytes)
	}
	cmd.ID = FiringID(cmd.ID, due)
	return cmd, true, nil
}

// checkScheduler refuses a command that a schedule of another project (or
// a v2 schedule into a v1 subject, which names its project in the body)
// published. NATS permissions confine an app to its project's schedule
// subjects, but the server lets a schedule target any subject of its
// stream (the Nats-Schedule-Target header, which permissions cannot see),
// so the worker holds a fired command to its schedule's project. The
// server sets Nats-Scheduler on every message a schedule publishes, and
// refuses it from a client except beside a purge.
func checkScheduler(s Subjects, cmd Command, h map[string][]string) error {
	v := h[HeaderScheduler]
	if len(v) == 0 || v[0] == "" {
		return nil
	}
	r, err := s.ParseSchedule(v[0])
	if err != nil || r.Project != cmd.Project {
		return Invalidf("the command was published by the schedule %q, which is not among its project's schedules: a schedule may publish only into its own project", Clip(v[0]))
	}
	return nil
}

// The cron dialect is NATS's (and robfig/cron's): six fields, seconds
// first; a field is a list of *, ?, N, N-M, with an optional /step; months
// and weekdays may be named (jan, mon); when both day fields are
// restricted, a day matching either fires.
type cronSpec struct {
	second, minute, hour, dom, month, dow uint64
	loc                                   *time.Location
}

const cronStar = 1 << 63

type cronField struct {
	name     string
	min, max uint
	names    []string // names[i] is the value min+i
}

var cronFields = [6]cronField{
	{name: "second", max: 59},
	{name: "minute", max: 59},
	{name: "hour", max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var cronShorthands = map[string]string{
	"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
	"@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}

func (r Recurrence) cron() (cronSpec, error) {
	expr := r.Cron
	if s, ok := cronShorthands[expr]; ok {
		expr = s
	}
	fields := strings.Fields(expr)
	if len(fields) != 6 {
		return cronSpec{}, Invalidf("the cron expression %q has %d fields: want 6, seconds first (\"0 0 9 * * 1-5\" is 09:00 on weekdays)", Clip(r.Cron), len(fields))
	}
	c := cronSpec{loc: time.UTC}
	if r.TZ != "" {
		loc, err := time.LoadLocation(r.TZ)
		if err != nil || r.TZ == "Local" {
			return cronSpec{}, Invalidf("the time zone %q is not an IANA zone name such as Europe/London", Clip(r.TZ))
		}
		c.loc = loc
	}
	dst := [6]*uint64{&c.second, &c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range fields {
		b, err := cronFields[i].parse(f)
		if err != nil {
			return cronSpec{}, Invalidf("the cron expression %q: %s field %q: %v", Clip(r.Cron), cronFields[i].name, f, err)
		}
		*dst[i] = b
	}
	if c.next(time.Now()).IsZero() {
		return cronSpec{}, Invalidf("the cron expression %q never matches within five years", Clip(r.Cron))
	}
	return c, nil
}

func (f cronField) parse(field string) (uint64, error) {
	var out uint64
	for expr := range strings.SplitSeq(field, ",") {
		rng, stepS, hasStep := strings.Cut(expr, "/")
		lo, hi := f.min, f.max
		var extra uint64
		switch {
		case rng == "*" || rng == "?":
			extra = cronStar
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, err
				}
			} else if hasStep {
				hi = f.max // "N/step" runs from N to the end
			}
		}
		step := uint(1)
		if hasStep {
			n, err := strconv.ParseUint(stepS, 10, 8)
			if err != nil || n == 0 {
				return 0, fmt.Errorf("the step %q is not a positive number", stepS)
			}
			step = uint(n)
			if step > 1 {
				extra = 0
			}
		}
		if lo > hi {
			return 0, fmt.Errorf("the range %s runs backwards", rng)
		}
		for v := lo; v <= hi; v += step {
			out |= 1 << v
		}
		out |= extra
	}
	return out, nil
}

func (f cronField) value(s string) (uint, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + uint(i), nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		if f.names != nil {
			return 0, errors.New("want a number or a name such as " + f.names[0])
		}
		return 0, errors.New("want a number")
	}
	if uint(n) < f.min || uint(n) > f.max {
		return 0, fmt.Errorf("%d is outside %d-%d", n, f.min, f.max)
	}
	return uint(n), nil
}

// next is the first second after t that c matches, as NATS computes it;
// zero if none within five years.
func (c cronSpec) next(t time.Time) time.Time {
	t = t.In(c.loc).Truncate(time.Second).Add(time.Second)
	limit := t.Year() + 5
	for t.Year() <= limit {
		switch {
		case c.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, c.loc)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, c.loc)
		case c.hour&(1<<uint(t.Hour())) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, c.loc)
		case c.minute&(1<<uint(t.Minute())) == 0:
			t = t.Truncate(time.Minute).Add(time.Minute)
		case c.second&(1<<uint(t.Second())) == 0:
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}

func (c cronSpec) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.dom&cronStar != 0 || c.dow&cronStar != 0 {
		return dom && dow
	}
	return dom || dow
}
