package contract

import (
	"strings"
	"testing"
	"time"
)

func TestQuietHoursUntil(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	night := QuietHours{Start: "21:00", End: "08:00", TZ: "Europe/London"}
	tests := []struct {
		name string
		q    QuietHours
		now  string
		want string // "" outside the window
	}{
		{"evening, winter", night, "2026-12-07T22:30:00Z", "2026-12-08T08:00:00Z"},
		{"early morning, winter", night, "2026-12-08T07:59:00Z", "2026-12-08T08:00:00Z"},
		{"at the end: outside", night, "2026-12-08T08:00:00Z", ""},
		{"at the start: inside", night, "2026-12-07T21:00:00Z", "2026-12-08T08:00:00Z"},
		{"daytime", night, "2026-12-07T12:00:00Z", ""},
		{"summer time: 20:30 UTC is 21:30 in London", night, "2026-07-01T20:30:00Z", "2026-07-02T07:00:00Z"},
		{"summer time: 07:30 UTC is 08:30 in London", night, "2026-07-02T07:30:00Z", ""},
		{"the night clocks go back", night, "2026-10-24T22:00:00Z", "2026-10-25T08:00:00Z"},
		{"a window within a day", QuietHours{Start: "12:00", End: "14:00", TZ: "Asia/Tokyo"}, "2026-12-07T03:30:00Z", "2026-12-07T05:00:00Z"},
		{"a window within a day, outside", QuietHours{Start: "12:00", End: "14:00", TZ: "Asia/Tokyo"}, "2026-12-07T12:30:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.q.Until(at(tt.now))
			if tt.want == "" && !got.IsZero() || tt.want != "" && !got.Equal(at(tt.want)) {
				t.Errorf("Until(%s) = %s, want %q", tt.now, got.UTC(), tt.want)
			}
		})
	}
}

func TestQuietHoursDecode(t *testing.T) {
	const head = `{"id":"q","type":"send","chat_id":"c","content":"hi","quiet_hours":`
	cmd, err := DecodeBody([]byte(head + `{"start":"21:00","end":"08:00","tz":"Europe/London"}}`))
	if err != nil || cmd.QuietHours == nil || *cmd.QuietHours != (QuietHours{Start: "21:00", End: "08:00", TZ: "Europe/London"}) {
		t.Fatalf("DecodeBody = %+v, %v", cmd.QuietHours, err)
	}
	without := cmd
	without.QuietHours = nil
	if cmd.Hash() != without.Hash() {
		t.Error("quiet_hours changes the hash: it says when, not what")
	}
	for body, problem := range map[string]string{
		`{"start":"9pm","end":"08:00","tz":"Europe/London"}`:      "want HH:MM",
		`{"start":"21:00","end":"24:00","tz":"Europe/London"}`:    "want HH:MM",
		`{"start":"21:00","end":"21:00","tz":"Europe/London"}`:    "an empty window",
		`{"start":"21:00","end":"08:00"}`:                         "want the visitor's IANA zone",
		`{"start":"21:00","end":"08:00","tz":"Europe/Londres"}`:   "not an IANA zone",
		`{"start":"21:00","end":"08:00","tz":"UTC","days":"mon"}`: "unknown field",
		`"21:00-08:00"`: "should be",
	} {
		_, err := DecodeBody([]byte(head + body + `}`))
		if ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), problem) {
			t.Errorf("quiet_hours %s: %v, want invalid, mentioning %q", body, err, problem)
		}
	}
}
