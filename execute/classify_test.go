package execute

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/idempotency"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want actions.Class
	}{
		{"none", nil, ""},
		{"the worker's own", actions.Invalidf("bad"), actions.ClassInvalid},
		{"wrapped own", fmt.Errorf("ctx: %w", actions.Permanentf("no")), actions.ClassPermanent},
		{"API 503", &chat.APIError{StatusCode: 503}, actions.ClassRetryable},
		{"API 429", &chat.APIError{StatusCode: 429}, actions.ClassRetryable},
		{"API 404", &chat.APIError{StatusCode: 404}, actions.ClassPermanent},
		{"invalid chat ID", chat.ErrInvalidChatID, actions.ClassPermanent},
		{"wrapped retryable", fmt.Errorf("outage: %w", chat.ErrRetryable), actions.ClassRetryable},
		{"store conflict", idempotency.ErrConflict, actions.ClassConflict},
		{"timeout", context.DeadlineExceeded, actions.ClassRetryable},
		{"unknown", errors.New("boom"), actions.ClassInternal},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("%s: ClassOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}
