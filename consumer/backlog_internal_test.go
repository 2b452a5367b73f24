package consumer

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestOldestAge(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state jetstream.StreamState
		want  time.Duration
	}{
		{"empty stream", jetstream.StreamState{}, 0},
		{"empty, with the last first time kept", jetstream.StreamState{FirstTime: now.Add(-time.Hour)}, 0},
		{"one waiting for a minute", jetstream.StreamState{Msgs: 1, FirstTime: now.Add(-time.Minute)}, time.Minute},
		{"server clock ahead", jetstream.StreamState{Msgs: 3, FirstTime: now.Add(time.Second)}, 0},
		{"no timestamp", jetstream.StreamState{Msgs: 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oldestAge(tt.state, now); got != tt.want {
				t.Errorf("oldestAge = %v, want %v", got, tt.want)
			}
		})
	}
}
