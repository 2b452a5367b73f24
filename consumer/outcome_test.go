package consumer

import (
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
)

// TestOutcomeValues: the outcome names what dashboards, alerts and apps
// read (span attributes, result statuses, metric labels); its values are
// pinned here, and each is read from the one type.
func TestOutcomeValues(t *testing.T) {
	tests := []struct {
		o       outcome
		value   string
		latency string // chatworker_command_latency_seconds' outcome label, "" when not recorded
	}{
		{outcomeSucceeded, contract.StatusSucceeded, "result"},
		{outcomeDuplicate, contract.StatusDuplicate, "result"},
		{outcomeDeadLetter, "dead_letter", "dead_letter"},
		{outcomeRetryLater, "retry_later", ""},
		{outcomeHandedBack, "handed_back", ""},
		{outcomeWaiting, "waiting_for_order", ""},
		{outcomeRequeued, "requeued", ""},
	}
	for _, tt := range tests {
		if string(tt.o) != tt.value || tt.o.latencyLabel() != tt.latency {
			t.Errorf("outcome %q (latency label %q), want %q (%q)", tt.o, tt.o.latencyLabel(), tt.value, tt.latency)
		}
	}
	if OutcomeResult != "result" || OutcomeDeadLetter != "dead_letter" {
		t.Errorf("latency labels %q, %q: the dashboard and alerts read result and dead_letter", OutcomeResult, OutcomeDeadLetter)
	}
	if handedBackAfter(0) != outcomeHandedBack || handedBackAfter(time.Millisecond) != outcomeRetryLater {
		t.Error("a hand-back is handed_back at once, retry_later after a delay")
	}
}
