package consumer

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
)

// TestDecide covers every branch of the one decision about a command,
// without a server. Delays are drawn with jitter, so rows give the range a
// delay must fall in.
func TestDecide(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, MaxElapsed: time.Hour, InitialInterval: 100 * time.Millisecond,
		MaxInterval: 10 * time.Second, InProcessMax: 2 * time.Second, MaxAbandoned: 3}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		s        situation
		want     outcome
		class    actions.Class
		min, max time.Duration // the delay's range, inclusive
	}{
		{name: "before a call: proceed", s: situation{Event: beforeCall}, want: outcomeProceed},
		{name: "before a call, deadline ahead: proceed", s: situation{Event: beforeCall, Deadline: now.Add(time.Second)}, want: outcomeProceed},
		{name: "before a call, at the deadline: expired", s: situation{Event: beforeCall, Deadline: now}, want: outcomeDeadLetter, class: contract.ClassExpired},
		{name: "before a call, past the deadline: expired", s: situation{Event: beforeCall, Deadline: now.Add(-time.Second)}, want: outcomeDeadLetter, class: contract.ClassExpired},
		{name: "success", s: situation{Event: succeeded, Attempts: 1}, want: outcomeSucceeded},
		{name: "invalid: dead letter", s: situation{Event: failed, Class: contract.ClassInvalid}, want: outcomeDeadLetter, class: contract.ClassInvalid},
		{name: "permanent: dead letter", s: situation{Event: failed, Class: contract.ClassPermanent, Attempts: 1}, want: outcomeDeadLetter, class: contract.ClassPermanent},
		{name: "conflict: dead letter", s: situation{Event: failed, Class: contract.ClassConflict}, want: outcomeDeadLetter, class: contract.ClassConflict},
		{name: "retryable, short wait: retry here", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now},
			want: outcomeRetryHere, min: 1, max: 100 * time.Millisecond},
		{name: "internal is retried like retryable", s: situation{Event: failed, Class: contract.ClassInternal, Attempts: 2, FirstAttemptAt: now},
			want: outcomeRetryHere, min: 1, max: 200 * time.Millisecond},
		{name: "retryable, hint over the in-process limit: hand back", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now, Hint: 30 * time.Second},
			want: outcomeRetryLater, min: 30 * time.Second, max: 30 * time.Second},
		{name: "retryable, hint under it: retry here no sooner than the hint", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now, Hint: time.Second},
			want: outcomeRetryHere, min: time.Second, max: time.Second},
		{name: "retryable, attempts spent: exhausted", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 5, FirstAttemptAt: now},
			want: outcomeDeadLetter, class: contract.ClassExhausted},
		{name: "retryable, time spent: exhausted", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now.Add(-time.Hour)},
			want: outcomeDeadLetter, class: contract.ClassExhausted},
		{name: "retryable, past the deadline: expired", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now, Deadline: now},
			want: outcomeDeadLetter, class: contract.ClassExpired},
		{name: "retryable, wait would end at or after the deadline: expired", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now, Hint: time.Second, Deadline: now.Add(time.Second)},
			want: outcomeDeadLetter, class: contract.ClassExpired},
		{name: "retryable, wait ends before the deadline: retry here", s: situation{Event: failed, Class: contract.ClassRetryable, Attempts: 1, FirstAttemptAt: now, Hint: time.Second, Deadline: now.Add(time.Second + 1)},
			want: outcomeRetryHere, min: time.Second, max: time.Second},
		{name: "permanent beats an expired deadline", s: situation{Event: failed, Class: contract.ClassPermanent, Deadline: now.Add(-time.Second)}, want: outcomeDeadLetter, class: contract.ClassPermanent},
		{name: "panic: hand back, never in process, hint ignored", s: situation{Event: panicked, Class: contract.ClassInternal, Attempts: 1, FirstAttemptAt: now, Hint: time.Hour},
			want: outcomeRetryLater, min: 1, max: 100 * time.Millisecond},
		{name: "panic, attempts spent: exhausted", s: situation{Event: panicked, Class: contract.ClassInternal, Attempts: 5, FirstAttemptAt: now},
			want: outcomeDeadLetter, class: contract.ClassExhausted},
		{name: "shutting down: hand back at once", s: situation{Event: stopping, Class: contract.ClassPermanent, Attempts: 5}, want: outcomeHandedBack},
		{name: "busy, lease ends soon: hand back until it ends", s: situation{Event: busy, Hint: 60 * time.Millisecond, Delivered: 20},
			want: outcomeRetryLater, min: minBusyDelay, max: 60 * time.Millisecond},
		{name: "busy, lease ends now: no sooner than the floor", s: situation{Event: busy, Hint: 0, Delivered: 1},
			want: outcomeRetryLater, min: minBusyDelay, max: minBusyDelay},
		{name: "busy, long lease: backoff by deliveries", s: situation{Event: busy, Hint: time.Minute, Delivered: 1},
			want: outcomeRetryLater, min: minBusyDelay, max: 100 * time.Millisecond},
		{name: "store down: hand back, no dead letter however spent", s: situation{Event: storeDown, Attempts: 5, FirstAttemptAt: now.Add(-2 * time.Hour), Delivered: 1},
			want: outcomeRetryLater, min: infraDelayMin, max: 2 * infraDelayMin},
		{name: "store down long: the wait grows", s: situation{Event: storeDown, Delivered: 5},
			want: outcomeRetryLater, min: 16 * infraDelayMin, max: 32 * infraDelayMin},
		{name: "store down for hundreds of deliveries: still no dead letter, at most the ceiling", s: situation{Event: storeDown, Delivered: 500},
			want: outcomeRetryLater, min: infraDelayMax / 2, max: infraDelayMax},
		{name: "record not stored: hand back, growing", s: situation{Event: recordNotStored, Delivered: 3},
			want: outcomeRetryLater, min: 4 * infraDelayMin, max: 8 * infraDelayMin},
		{name: "before a call, abandoned by crashed workers: exhausted (the poison backstop)", s: situation{Event: beforeCall, Abandoned: 3},
			want: outcomeDeadLetter, class: contract.ClassExhausted},
		{name: "before a call, abandoned less often: proceed", s: situation{Event: beforeCall, Abandoned: 2, Delivered: 1000},
			want: outcomeProceed},
		{name: "before a call, budget spent on an earlier delivery: exhausted without a call", s: situation{Event: beforeCall, Attempts: 5, FirstAttemptAt: now},
			want: outcomeDeadLetter, class: contract.ClassExhausted},
		{name: "project paused: hand back until after its check, however spent", s: situation{Event: paused, Hint: 3 * time.Second, Attempts: 5, Delivered: 1000},
			want: outcomeRetryLater, min: 3 * time.Second, max: 3 * time.Second},
		{name: "waiting for the project's rate budget: hand back for the booked wait", s: situation{Event: rateWait, Hint: 700 * time.Millisecond},
			want: outcomeRetryLater, min: 700 * time.Millisecond, max: 700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			s.Now = now
			for range 50 { // the jitter: every draw must be in range
				got := p.decide(s)
				if got.Outcome != tt.want || got.Class != tt.class {
					t.Fatalf("decide = %+v, want %s class %q", got, tt.want, tt.class)
				}
				if got.Delay < tt.min || got.Delay > tt.max {
					t.Fatalf("delay %v, want %v..%v", got.Delay, tt.min, tt.max)
				}
			}
		})
	}
}

// TestClassify: each kind of failure reaches decide as its own event, read
// from the error alone, however it was wrapped on the way.
func TestClassify(t *testing.T) {
	apiErr := &chat.APIError{StatusCode: 429, RetryAfter: 3 * time.Second}
	tests := []struct {
		name  string
		err   error
		event event
		class actions.Class
		hint  time.Duration
	}{
		{"stopping", fmt.Errorf("slot: %w", errStopping), stopping, "", 0},
		{"record not stored", &notStoredError{errors.New("no PubAck")}, recordNotStored, "", 0},
		{"store down", &storeError{errors.New("kv timeout")}, storeDown, "", 0},
		{"busy", &idempotency.BusyError{RetryIn: time.Second}, busy, "", time.Second},
		{"paused", &pausedError{delay: 2 * time.Second, err: errors.New("401")}, paused, "", 2 * time.Second},
		{"rate wait", &rateWaitError{delay: 700 * time.Millisecond}, rateWait, "", 700 * time.Millisecond},
		{"conflict", idempotency.ErrConflict, failed, contract.ClassConflict, 0},
		{"panic", &panicError{&contract.Error{Class: contract.ClassInternal, Msg: "panic"}}, panicked, contract.ClassInternal, 0},
		{"invalid command", &contract.Error{Class: contract.ClassInvalid, Msg: "no id"}, failed, contract.ClassInvalid, 0},
		{"API refused with a hint", fmt.Errorf("send: %w", apiErr), failed, execute.ClassOf(apiErr), 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, class, hint := classify(tt.err)
			if ev != tt.event || class != tt.class || hint != tt.hint {
				t.Errorf("classify = %v, %q, %v; want %v, %q, %v", ev, class, hint, tt.event, tt.class, tt.hint)
			}
		})
	}
}
