package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// durationHint is what every duration flag and variable accepts, said the
// same way everywhere.
const durationHint = "a duration such as 30s, 90m, 36h or 7d"

// parseDuration reads the one duration syntax of the command line: Go's
// (90s, 1h30m) with days as well (7d, 1d12h), so that the retention flags,
// --in, --not-after, --since and the variables all take the same values.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty: want %s", durationHint)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return 0, fmt.Errorf("no unit: want %s", durationHint)
	}
	rest, neg := strings.CutPrefix(s, "-")
	var days time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("want %s", durationHint)
		}
		days, rest = time.Duration(n)*24*time.Hour, rest[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil || d < 0 {
			return 0, fmt.Errorf("want %s", durationHint)
		}
	}
	d += days
	if neg {
		d = -d
	}
	return d, nil
}

// formatDuration writes d as parseDuration reads it, shortest first:
// 168h is 7d, 1m0s is 1m.
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseWhen reads an absolute time (RFC 3339, or a date and time without a
// zone, taken as UTC) or a duration before now (90m, 2h, 7d).
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	t, err := when(s, now)
	if err != nil {
		return t, fmt.Errorf("%s %q: %w", flag, s, err)
	}
	return t, nil
}

func when(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := parseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a duration means that long ago, so it must be positive")
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("want a time (2026-05-01, 2026-05-01T14:00:00Z) or how long ago (90m, 2h, 7d)")
}

// whenValue is a --since or --until flag: it checks the value as it is
// parsed, so a bad one is reported with the other flags, and keeps it as an
// RFC 3339 time for the packages that filter by it.
type whenValue struct {
	p   *string
	now func() time.Time
}

func (w whenValue) String() string {
	if w.p == nil {
		return ""
	}
	return *w.p
}

func (w whenValue) Set(s string) error {
	t, err := when(s, w.now())
	if err != nil {
		return err
	}
	*w.p = ""
	if !t.IsZero() {
		*w.p = t.Format(time.RFC3339Nano)
	}
	return nil
}
