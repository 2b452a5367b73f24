package consumer

import (
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/idempotency"
)

// leasedStore is a store that says how long its claims last.
type leasedStore struct {
	idempotency.Fake
	lease time.Duration
}

func (s *leasedStore) Lease() time.Duration { return s.lease }

// TestNewValidatesConfig: New refuses settings that cannot work, the
// lease rule included, which only the command line checked before.
func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		lease   time.Duration
		wantErr string // "" for none
	}{
		{name: "zero config takes the defaults", cfg: Config{}, lease: idempotency.DefaultLease},
		{name: "lease over a third of AckWait", cfg: Config{Topology: Topology{AckWait: 30 * time.Second}}, lease: 11 * time.Second},
		{name: "lease a third of AckWait", cfg: Config{Topology: Topology{AckWait: 30 * time.Second}}, lease: 10 * time.Second, wantErr: "must exceed a third of the ack wait"},
		{name: "lease under the default AckWait's third", cfg: Config{}, lease: 5 * time.Second, wantErr: "must exceed a third of the ack wait"},
		{name: "negative concurrency", cfg: Config{Concurrency: -1}, wantErr: "concurrency -1"},
		{name: "max deliver 1", cfg: Config{Topology: Topology{MaxDeliver: 1}}, wantErr: "max deliver 1"},
		{name: "replicas 7", cfg: Config{Topology: Topology{Replicas: 7}}, wantErr: "replicas 7"},
		{name: "negative retry attempts", cfg: Config{Retry: RetryPolicy{MaxAttempts: -1}}, wantErr: "retry max attempts -1"},
		{name: "max interval below initial", cfg: Config{Retry: RetryPolicy{InitialInterval: time.Second, MaxInterval: time.Millisecond}}, wantErr: "below the initial interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(nil, nil, nil, &leasedStore{lease: tt.lease}, tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}
