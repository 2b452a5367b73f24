package contract

import (
	"strings"
	"testing"
	"time"
)

func TestFrequencyCapDecode(t *testing.T) {
	const head = `{"id":"f","type":"send","chat_id":"c","content":"hi","frequency_cap":`
	cmd, err := DecodeBody([]byte(head + `{"max":3,"per":"24h"}}`))
	if err != nil || cmd.FrequencyCap == nil || *cmd.FrequencyCap != (FrequencyCap{Max: 3, Per: "24h"}) {
		t.Fatalf("DecodeBody = %+v, %v", cmd.FrequencyCap, err)
	}
	without := cmd
	without.FrequencyCap = nil
	if cmd.Hash() != without.Hash() {
		t.Error("frequency_cap changes the hash: it says when, not what")
	}
	for body, problem := range map[string]string{
		`{"max":0,"per":"24h"}`:          "want 1 to 100",
		`{"max":101,"per":"24h"}`:        "want 1 to 100",
		`{"max":3,"per":"24"}`:           "whole number of minutes",
		`{"max":3,"per":"1h30m"}`:        "whole number of minutes",
		`{"max":3,"per":"31d"}`:          "up to 30 days",
		`{"max":3,"per":"-1h"}`:          "whole number of minutes",
		`{"max":3}`:                      "whole number of minutes",
		`{"max":3,"per":"1h","burst":2}`: "unknown field",
		`"3/24h"`:                        "should be",
	} {
		_, err := DecodeBody([]byte(head + body + `}`))
		if ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), problem) {
			t.Errorf("frequency_cap %s: %v, want invalid, mentioning %q", body, err, problem)
		}
	}
	_, err = DecodeBody([]byte(`{"id":"f","type":"note","chat_id":"c","content":"hi","frequency_cap":{"max":3,"per":"24h"}}`))
	if ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), "only for send") {
		t.Errorf("a note with a cap: %v, want invalid: only for send", err)
	}
}

func TestParseFrequencyCap(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"3/24h", 24 * time.Hour}, {"1/90m", 90 * time.Minute}, {"100/30d", 30 * 24 * time.Hour}, {"2/43200m", 30 * 24 * time.Hour},
		{"3", 0}, {"3/", 0}, {"/1h", 0}, {"x/1h", 0}, {"3/1s", 0}, {"3/721h", 0}, {"0/1h", 0},
	} {
		c, err := ParseFrequencyCap(tt.in)
		var got time.Duration
		if err == nil {
			got, _ = c.Window()
			if c.String() != tt.in {
				t.Errorf("ParseFrequencyCap(%q).String() = %q", tt.in, c)
			}
		}
		if got != tt.want || (err == nil) != (tt.want != 0) {
			t.Errorf("ParseFrequencyCap(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
