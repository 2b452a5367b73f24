package contract

import (
	"strings"
	"testing"
	"time"
)

func TestRecurrenceNextAndPrev(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name      string
		r         Recurrence
		from      string
		want      string // first firing after from
		wantAfter string // the one after that
	}{
		{"weekdays at 9 in London, winter", Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Europe/London"}, "2026-12-04T10:00:00Z", "2026-12-07T09:00:00Z", "2026-12-08T09:00:00Z"},
		{"weekdays at 9 in London, summer time", Recurrence{Cron: "0 0 9 * * mon-fri", TZ: "Europe/London"}, "2026-07-01T09:30:00Z", "2026-07-02T08:00:00Z", "2026-07-03T08:00:00Z"},
		{"weekdays at 9 in New York", Recurrence{Cron: "0 0 9 * * 1-5", TZ: "America/New_York"}, "2026-12-04T10:00:00Z", "2026-12-04T14:00:00Z", "2026-12-07T14:00:00Z"},
		{"every 15 minutes", Recurrence{Cron: "0 */15 * * * *"}, "2026-12-04T10:07:31Z", "2026-12-04T10:15:00Z", "2026-12-04T10:30:00Z"},
		{"every second", Recurrence{Cron: "* * * * * *"}, "2026-12-04T10:07:31Z", "2026-12-04T10:07:32Z", "2026-12-04T10:07:33Z"},
		{"first of the month or Sundays", Recurrence{Cron: "0 30 8 1 * 0"}, "2026-12-01T09:00:00Z", "2026-12-06T08:30:00Z", "2026-12-13T08:30:00Z"},
		{"yearly", Recurrence{Cron: "@yearly"}, "2026-12-04T10:00:00Z", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"},
		{"new year's eve in Sydney", Recurrence{Cron: "0 0 0 1 jan *", TZ: "Australia/Sydney"}, "2026-06-01T00:00:00Z", "2026-12-31T13:00:00Z", "2027-12-31T13:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Validate(); err != nil {
				t.Fatal(err)
			}
			got := tt.r.Next(utc(tt.from))
			if !got.Equal(utc(tt.want)) {
				t.Fatalf("Next(%s) = %s, want %s", tt.from, got.UTC(), tt.want)
			}
			after := tt.r.Next(got)
			if !after.Equal(utc(tt.wantAfter)) {
				t.Fatalf("Next(%s) = %s, want %s", got.UTC(), after.UTC(), tt.wantAfter)
			}
			if prev := tt.r.Prev(after); !prev.Equal(got) {
				t.Errorf("Prev(%s) = %s, want %s", after.UTC(), prev, got.UTC())
			}
		})
	}
}

func TestRecurrenceEvery(t *testing.T) {
	r := Recurrence{Every: 24 * time.Hour}
	stored := time.Date(2026, 12, 1, 9, 0, 0, 400e6, time.UTC)
	if got, want := r.NextEvery(stored, stored.Add(time.Hour)), time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextEvery before the first firing = %s, want %s", got, want)
	}
	if got, want := r.NextEvery(stored, time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)), time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextEvery after four firings = %s, want %s", got, want)
	}
	next := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	if got := r.Prev(next); !got.Equal(next.Add(-24 * time.Hour)) {
		t.Errorf("Prev = %s", got)
	}
	if p := r.Pattern(); p != "@every 24h0m0s" {
		t.Errorf("Pattern = %q", p)
	}
	back, err := ParseRecurrence(r.Pattern(), "")
	if err != nil || back != r {
		t.Errorf("ParseRecurrence(%q) = %+v, %v", r.Pattern(), back, err)
	}
}

func TestRecurrenceInvalid(t *testing.T) {
	tests := []struct {
		r       Recurrence
		problem string
	}{
		{Recurrence{}, "needs an interval or a cron"},
		{Recurrence{Every: time.Hour, Cron: "@daily"}, "not both"},
		{Recurrence{Every: 500 * time.Millisecond}, "at least 1s"},
		{Recurrence{Every: 1500 * time.Millisecond}, "whole seconds"},
		{Recurrence{Every: time.Hour, TZ: "Europe/London"}, "not with an interval"},
		{Recurrence{Cron: "0 9 * * 1-5"}, "has 5 fields: want 6"},
		{Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Europe/Londres"}, "not an IANA zone"},
		{Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Local"}, "not an IANA zone"},
		{Recurrence{Cron: "0 0 25 * * *"}, "hour field \"25\": 25 is outside 0-23"},
		{Recurrence{Cron: "0 0 9 * * fry"}, "a name such as sun"},
		{Recurrence{Cron: "0 0 9 * * 5-1"}, "runs backwards"},
		{Recurrence{Cron: "0 */0 9 * * *"}, "not a positive number"},
		{Recurrence{Cron: "0 0 0 30 feb *"}, "never matches"},
	}
	for _, tt := range tests {
		err := tt.r.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.problem) || ClassOf(err) != ClassInvalid {
			t.Errorf("%+v: Validate() = %v, want an invalid error mentioning %q", tt.r, err, tt.problem)
		}
	}
}

// Firing tells a recurring schedule's firing from every other command and
// names it by its due time, whatever the delay before NATS stored it.
func TestFiring(t *testing.T) {
	stored := time.Date(2026, 12, 7, 9, 0, 1, 700e6, time.UTC)
	due := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = []string{kv[i+1]}
		}
		return m
	}
	const sched = "chat.schedules.send.c1.daily-1"
	tests := []struct {
		name   string
		h      map[string][]string
		want   time.Time
		wantOK bool
	}{
		{"published directly", h(), time.Time{}, false},
		{"one-shot schedule", h(HeaderScheduler, sched, HeaderScheduleNext, "purge"), time.Time{}, false},
		{"cron in London", h(HeaderScheduler, sched, HeaderScheduleNext, "2026-12-08T09:00:00Z", HeaderRecurrence, "0 0 9 * * 1-5", HeaderRecurrenceTZ, "Europe/London"), due, true},
		{"every day", h(HeaderScheduler, sched, HeaderScheduleNext, "2026-12-08T09:00:00Z", HeaderRecurrence, "@every 24h0m0s"), due, true},
		{"no recurrence header: the stored second", h(HeaderScheduler, sched, HeaderScheduleNext, "2026-12-08T09:00:00Z"), due.Add(time.Second), true},
		{"next without a scheduler", h(HeaderScheduleNext, "2026-12-08T09:00:00Z"), time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Firing(tt.h, stored)
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("Firing = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if id := FiringID("daily-1", due.In(time.FixedZone("x", 3600))); id != "daily-1@2026-12-07T09:00:00Z" {
		t.Errorf("FiringID = %q", id)
	}
	if n := len(FiringID(strings.Repeat("x", MaxScheduleIDBytes), due)); n != MaxIDBytes {
		t.Errorf("the longest firing id has %d bytes, want %d", n, MaxIDBytes)
	}
}

// A firing decodes with its own id; a directly published command keeps its
// id; a schedule id too long for its firings' ids is invalid, not cut.
func TestDecodeMessageNamesFirings(t *testing.T) {
	s := Subjects{}
	stored := time.Date(2026, 12, 7, 9, 0, 0, 300e6, time.UTC)
	fired := map[string][]string{HeaderScheduler: {"chat.schedules.send.c1.x"}, HeaderScheduleNext: {"2026-12-08T09:00:00Z"}, HeaderRecurrence: {"@every 24h0m0s"}}
	body := func(id string) []byte {
		return []byte(`{"id":"` + id + `","type":"send","chat_id":"c1","content":"hi"}`)
	}
	tests := []struct {
		name   string
		id     string
		h      map[string][]string
		want   string
		firing bool
		bad    bool
	}{
		{"direct", "daily", nil, "daily", false, false},
		{"firing", "daily", fired, "daily@2026-12-07T09:00:00Z", true, false},
		{"longest schedule id", strings.Repeat("x", MaxScheduleIDBytes), fired, strings.Repeat("x", MaxScheduleIDBytes) + "@2026-12-07T09:00:00Z", true, false},
		{"schedule id too long", strings.Repeat("x", MaxScheduleIDBytes+1), fired, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, firing, err := DecodeMessage(s, s.Command(TypeSend, "c1"), body(tt.id), tt.h, stored)
			if (err != nil) != tt.bad || cmd.ID != tt.want || firing != tt.firing || tt.bad && ClassOf(err) != ClassInvalid {
				t.Errorf("DecodeMessage = %q, %v, %v; want %q, %v (invalid: %v)", cmd.ID, firing, err, tt.want, tt.firing, tt.bad)
			}
		})
	}
}
