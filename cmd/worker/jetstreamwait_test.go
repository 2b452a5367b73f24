package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Which setup errors worker run waits out at start: no answer yet, but not
// a refusal that waiting cannot change.
func TestJetStreamNotReady(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("create or update stream CHAT_COMMANDS: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "x"})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no answer in time", fmt.Errorf("read stream: %w", context.DeadlineExceeded), true},
		{"no answer, the client's timeout", nats.ErrTimeout, true},
		{"no responder for the API", fmt.Errorf("read stream: %w", nats.ErrNoResponders), true},
		{"JetStream not enabled", fmt.Errorf("x: %w", jetstream.ErrJetStreamNotEnabled), true},
		{"cluster temporarily unavailable", api(503, jsErrCodeClusterUnavailable), true},
		{"no suitable peers yet", api(400, jsErrCodeNoSuitablePeers), true},
		{"another 503", api(503, 10999), true},
		{"the account has no JetStream", api(503, jetstream.JSErrCodeJetStreamNotEnabledForAccount), false},
		{"stream name in use with another config", api(400, jetstream.JSErrCodeStreamNameInUse), false},
		{"a permissions violation", nats.ErrPermissionViolation, false},
		{"any other error", errors.New("bad"), false},
	}
	for _, tt := range tests {
		if got := jetStreamNotReady(tt.err); got != tt.want {
			t.Errorf("%s (%v): %t, want %t", tt.name, tt.err, got, tt.want)
		}
	}
}
