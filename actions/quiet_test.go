package actions_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
)

// quietNow is a quiet window, in a zone whose offset is not whole hours,
// that holds the present and ends at the next minute there.
func quietNow(t *testing.T) (actions.QuietHours, time.Time) {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(loc)
	end := now.Truncate(time.Minute).Add(time.Minute)
	q := actions.QuietHours{Start: now.Add(-time.Minute).Format("15:04"), End: end.Format("15:04"), TZ: "Asia/Kathmandu"}
	if until := q.Until(time.Now()); !until.Equal(end) {
		t.Fatalf("the window %+v holds now until %s, want %s", q, until, end)
	}
	return q, end
}

// Quiet hours in the visitor's zone hold a command, without spending an
// attempt, and release it when they end.
func TestQuietHoursHoldAndRelease(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	q, until := quietNow(t)
	_, settled, err := actions.PublishAndWait(withTimeout(t, 90*time.Second), p.js,
		actions.Send{ID: "quiet-1", ChatID: "c-quiet", Content: "Good morning", QuietHours: &q}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	r := settled.Result
	if r == nil || r.Status != contract.StatusSucceeded || r.Attempts != 1 || r.CompletedAt.Before(until) {
		t.Fatalf("settled %s: want a success with one attempt, at or after the quiet hours end (%s)", settled.Data, until.UTC())
	}
}

// A deadline inside the quiet hours expires the command: it does not
// arrive late.
func TestQuietHoursDeadlineExpires(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	q, until := quietNow(t)
	deadline := until.Add(-time.Second) // inside the window
	if !deadline.After(time.Now()) {
		q, until = quietNow(t) // the window ended meanwhile: the next minute's
		deadline = until.Add(-time.Second)
	}
	_, settled, err := actions.PublishAndWait(withTimeout(t, 30*time.Second), p.js,
		actions.Send{ID: "quiet-2", ChatID: "c-quiet", Content: "Flash sale ends soon", QuietHours: &q, NotAfter: deadline}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	dl := settled.DeadLetter
	if dl == nil || dl.Error.Class != contract.ClassExpired || dl.Attempts != 0 || !strings.Contains(dl.Error.Message, "quiet hours") {
		t.Fatalf("settled %s: want an expired dead letter without attempts that names the quiet hours", settled.Data)
	}
}
