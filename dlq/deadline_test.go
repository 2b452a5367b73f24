package dlq

import (
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
)

// An expired command is listed with --class expired. Replayed as it is, it
// expires again (and the replay can say so beforehand); replayed with a new
// deadline, it runs: the deadline is not part of the idempotency hash, so
// the new body is no conflict with the run that expired. (This pipeline's
// API fails every call, so running ends as exhausted after real calls.)
func TestReplayExpired(t *testing.T) {
	p := newPipeline(t)
	p.publish(t, contract.Send{ID: "late-1", ChatID: "c", Content: "hi", NotAfter: time.Now().Add(-time.Minute)})
	p.waitDead(t, 1)

	f, err := ParseFilter(Values{Class: "expired"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := p.q.List(t.Context(), f)
	if err != nil || len(sel.Entries) != 1 || sel.Entries[0].ID != "late-1" || sel.Entries[0].Letter.Attempts != 0 {
		t.Fatalf("List(class expired) = %+v, %v", sel.Entries, err)
	}
	if !sel.Entries[0].PastDeadline(time.Now()) {
		t.Error("PastDeadline = false for a command a minute past its not_after")
	}

	tests := []struct {
		name      string
		notAfter  time.Time
		wantClass contract.Class
	}{
		{"as it is: expires again", time.Time{}, contract.ClassExpired},
		{"with a new deadline: runs", time.Now().Add(time.Hour), contract.ClassExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := p.q.List(t.Context(), Filter{ID: "late-1"})
			if err != nil || len(sel.Entries) != 1 {
				t.Fatalf("List = %+v, %v", sel.Entries, err)
			}
			if _, err := p.q.Replay(t.Context(), sel.Entries, ReplayOptions{NotAfter: tt.notAfter}); err != nil {
				t.Fatal(err)
			}
			var got Entry
			workertest.Eventually(t, time.Minute, func() bool {
				sel, err := p.q.List(t.Context(), Filter{ID: "late-1"})
				if err != nil || len(sel.Entries) != 1 {
					return false
				}
				got = sel.Entries[0]
				return len(got.Letter.Headers[ReplayedFromHeader]) > 0
			}, "the replay's dead letter")
			if got.Class() != tt.wantClass {
				t.Errorf("replayed: class %q (%s), want %q", got.Class(), got.Letter.Error.Message, tt.wantClass)
			}
			if (tt.wantClass == contract.ClassExpired) != (got.Letter.Attempts == 0) {
				t.Errorf("replayed: %d attempts", got.Letter.Attempts)
			}
		})
	}
}
