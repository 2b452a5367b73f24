package contract

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeNotAfter(t *testing.T) {
	tests := []struct {
		name, value string // value is the JSON of not_after
		want        time.Time
		problem     string // part of the message; empty when valid
	}{
		{"UTC", `"2026-11-25T09:15:00Z"`, time.Date(2026, 11, 25, 9, 15, 0, 0, time.UTC), ""},
		{"offset", `"2026-11-25T10:15:00+01:00"`, time.Date(2026, 11, 25, 9, 15, 0, 0, time.UTC), ""},
		{"fraction", `"2026-11-25T09:15:00.25Z"`, time.Date(2026, 11, 25, 9, 15, 0, 250e6, time.UTC), ""},
		{"null is absent", `null`, time.Time{}, ""},
		{"no zone", `"2026-11-25T09:15:00"`, time.Time{}, "RFC 3339 time with a zone"},
		{"date only", `"2026-11-25"`, time.Time{}, "RFC 3339 time with a zone"},
		{"duration", `"15m"`, time.Time{}, "RFC 3339 time with a zone"},
		{"empty", `""`, time.Time{}, "RFC 3339 time with a zone"},
		{"zero time", `"0001-01-01T00:00:00Z"`, time.Time{}, "RFC 3339 time with a zone"},
		{"number", `1764062100`, time.Time{}, `field "not_after" should be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"1","type":"send","chat_id":"abc","content":"hi","not_after":` + tt.value + `}`
			cmd, err := Decode(Subjects{}, "chat.commands.send.abc", []byte(body))
			if tt.problem != "" {
				if ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("error = %v (class %q), want class invalid mentioning %q", err, ClassOf(err), tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !cmd.NotAfter.Equal(tt.want) {
				t.Errorf("NotAfter = %v, want %v", cmd.NotAfter, tt.want)
			}
		})
	}
}

// A command without a deadline is encoded as before (no not_after key), and
// one with a deadline decodes back to the same instant.
func TestNotAfterRoundTrip(t *testing.T) {
	plain := Command{ID: "1", Type: TypeSend, ChatID: "abc", Content: "hi"}
	data, err := json.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "not_after") {
		t.Errorf("a command without a deadline encodes not_after: %s", data)
	}
	timed := plain
	timed.NotAfter = time.Date(2026, 11, 25, 9, 15, 0, 0, time.FixedZone("", 3600))
	data, err = json.Marshal(timed)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(Subjects{}, "chat.commands.send.abc", data)
	if err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	if !back.NotAfter.Equal(timed.NotAfter) {
		t.Errorf("NotAfter = %v, want %v", back.NotAfter, timed.NotAfter)
	}
}

// The deadline says when the effect may happen, not what it is: the same
// command with another deadline (a replay with a new one) must not conflict
// with its earlier run in the idempotency store.
func TestHashIgnoresNotAfter(t *testing.T) {
	c := Command{ID: "1", Type: TypeSend, ChatID: "abc", Content: "hi"}
	d := c
	d.NotAfter = time.Date(2026, 11, 25, 9, 15, 0, 0, time.UTC)
	if c.Hash() != d.Hash() {
		t.Error("a deadline changes the hash")
	}
}

func TestPastDeadline(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 15, 0, 0, time.UTC)
	tests := []struct {
		name     string
		notAfter time.Time
		now      time.Time
		want     bool
	}{
		{"no deadline", time.Time{}, at, false},
		{"before", at, at.Add(-time.Nanosecond), false},
		{"at: no call at the deadline itself", at, at, true},
		{"after", at, at.Add(time.Second), true},
		{"other zone, same instant", at.In(time.FixedZone("", -5*3600)), at, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Command{NotAfter: tt.notAfter}
			if got := c.PastDeadline(tt.now); got != tt.want {
				t.Errorf("PastDeadline = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateNotAfterYear(t *testing.T) {
	c := Command{ID: "1", Type: TypeArchive, ChatID: "abc", NotAfter: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := c.Validate(); ClassOf(err) != ClassInvalid {
		t.Errorf("Validate = %v, want class invalid", err)
	}
}

// Every command type an app publishes with the Go API can carry a
// deadline, export included.
func TestEveryCommanderCarriesNotAfter(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 15, 0, 0, time.UTC)
	for _, c := range []Commander{
		Send{ChatID: "a", Content: "x", NotAfter: at},
		Note{ChatID: "a", Content: "x", NotAfter: at},
		Archive{ChatID: "a", NotAfter: at},
		Export{ChatID: "a", NotAfter: at},
	} {
		if cmd := c.Command(); !cmd.NotAfter.Equal(at) {
			t.Errorf("%s: NotAfter %v, want %v", cmd.Type, cmd.NotAfter, at)
		}
	}
}
