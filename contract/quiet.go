package contract

import (
	"fmt"
	"time"
)

// QuietHours is a window of the visitor's day, on the clock of their time
// zone, in which the worker makes no API call for the command: the command
// waits in the stream, spending no attempts, until the window ends. A
// deadline still wins: a command whose not_after falls inside the window
// expires rather than arriving late. Like not_after, it says when, not
// what: it is not part of Hash.
type QuietHours struct {
	// Start and End are "HH:MM" on a 24-hour clock; an End before Start
	// runs over midnight ("21:00" to "08:00").
	Start string `json:"start"`
	End   string `json:"end"`
	// TZ is the visitor's IANA zone, Europe/London.
	TZ string `json:"tz"`
}

// Validate checks q's clock times and zone.
func (q QuietHours) Validate() error {
	_, _, _, err := q.parse()
	return err
}

func (q QuietHours) parse() (start, end int, loc *time.Location, err error) {
	clock := func(name, v string) (int, error) {
		t, err := time.Parse("15:04", v)
		if err != nil || len(v) != 5 {
			return 0, Invalidf("\"quiet_hours\".%s is %q: want HH:MM on a 24-hour clock, such as 21:00", name, Clip(v))
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	if start, err = clock("start", q.Start); err != nil {
		return
	}
	if end, err = clock("end", q.End); err != nil {
		return
	}
	if start == end {
		return 0, 0, nil, Invalidf("\"quiet_hours\" starts and ends at %s: an empty window, leave it out", q.Start)
	}
	if q.TZ == "" || q.TZ == "Local" {
		return 0, 0, nil, Invalidf("\"quiet_hours\".tz is %q: want the visitor's IANA zone, such as Europe/London", Clip(q.TZ))
	}
	if loc, err = time.LoadLocation(q.TZ); err != nil {
		return 0, 0, nil, Invalidf("\"quiet_hours\".tz %q is not an IANA zone name such as Europe/London", Clip(q.TZ))
	}
	return start, end, loc, nil
}

// Until is when the quiet window that holds now ends, or zero when now is
// outside every window (or q is not valid). A window end that does not
// exist on a day (a daylight-saving gap) is the first instant after it.
func (q QuietHours) Until(now time.Time) time.Time {
	start, end, loc, err := q.parse()
	if err != nil {
		return time.Time{}
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	endOn := func(days int) time.Time {
		return time.Date(local.Year(), local.Month(), local.Day()+days, end/60, end%60, 0, 0, loc)
	}
	switch {
	case start < end && m >= start && m < end:
		return endOn(0)
	case start > end && m >= start:
		return endOn(1)
	case start > end && m < end:
		return endOn(0)
	}
	return time.Time{}
}

// QuietUntil is when c's quiet hours end, if now is inside them; zero
// otherwise.
func (c Command) QuietUntil(now time.Time) time.Time {
	if c.QuietHours == nil {
		return time.Time{}
	}
	return c.QuietHours.Until(now)
}

// QuietExpired is the expired error of a command whose deadline falls
// inside the quiet hours that end at until.
func QuietExpired(c Command, until time.Time) *Error {
	return &Error{Class: ClassExpired, Msg: fmt.Sprintf("its deadline (not_after %s) falls inside the visitor's quiet hours (%s-%s %s), which end at %s",
		c.NotAfter.Format(time.RFC3339Nano), c.QuietHours.Start, c.QuietHours.End, c.QuietHours.TZ, until.UTC().Format(time.RFC3339))}
}
