package project

import (
	"testing"
	"time"
)

func TestOutageRule(t *testing.T) {
	type event struct {
		answered bool   // else: this command's call was unavailable
		command  string //
		after    time.Duration
		down     bool // what Unavailable must say
	}
	tests := []struct {
		name   string
		events []event
	}{
		{"three commands fail together", []event{
			{command: "a"}, {command: "b"}, {command: "c", down: true},
		}},
		{"one command failing alone never is an outage", []event{
			{command: "a"}, {command: "a"}, {command: "a"}, {command: "a"}, {command: "a"}, {command: "a"},
		}},
		{"one command fails while the others are answered", []event{
			{command: "a"}, {answered: true}, {command: "a"}, {command: "b"}, {answered: true}, {command: "a"}, {command: "c"}, {answered: true}, {command: "a"},
		}},
		{"failures too far apart", []event{
			{command: "a"}, {command: "b", after: 40 * time.Second}, {command: "c", after: 40 * time.Second},
			{command: "d", after: time.Second, down: true},
		}},
		{"after an outage, new failures are needed", []event{
			{command: "a"}, {command: "b"}, {command: "c", down: true}, {command: "a"}, {command: "b"}, {command: "d", down: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			d := NewDetector(OutageRule{})
			d.now = func() time.Time { return now }
			for i, e := range tt.events {
				now = now.Add(e.after)
				if e.answered {
					d.Answered("shop")
					continue
				}
				if got := d.Unavailable("shop", e.command); got != e.down {
					t.Fatalf("event %d (%s): down = %v, want %v", i, e.command, got, e.down)
				}
				// Another project's failures never count for this one.
				if d.Unavailable("other-"+e.command, e.command) {
					t.Fatalf("event %d: a lone failure of another project is an outage", i)
				}
			}
		})
	}
}
