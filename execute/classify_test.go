package execute

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want contract.Class
	}{
		{"none", nil, ""},
		{"the worker's own", contract.Invalidf("bad"), contract.ClassInvalid},
		{"wrapped own", fmt.Errorf("ctx: %w", contract.Permanentf("no")), contract.ClassPermanent},
		{"API 503", &chat.APIError{StatusCode: 503}, contract.ClassRetryable},
		{"API 429", &chat.APIError{StatusCode: 429}, contract.ClassRetryable},
		{"API 404", &chat.APIError{StatusCode: 404}, contract.ClassPermanent},
		{"invalid chat ID", chat.ErrInvalidChatID, contract.ClassPermanent},
		{"wrapped retryable", fmt.Errorf("outage: %w", chat.ErrRetryable), contract.ClassRetryable},
		{"store conflict", idempotency.ErrConflict, contract.ClassConflict},
		{"timeout", context.DeadlineExceeded, contract.ClassRetryable},
		{"unknown", errors.New("boom"), contract.ClassInternal},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.want {
			t.Errorf("%s: ClassOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}
