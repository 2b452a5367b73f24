package actions_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// schedulesServer is a server with the streams provisioned and no worker,
// so schedules stay pending, or fire into the work queue untaken.
func schedulesServer(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func list(t *testing.T, js jetstream.JetStream) []actions.Pending {
	t.Helper()
	l, err := actions.ListSchedules(t.Context(), js, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Scheduling an id again: the same command moves; a different body is
// refused as Publish refuses it, unless replacing was asked for; an id the
// worker took with another body is refused even then.
func TestScheduleSameIDAgain(t *testing.T) {
	js := schedulesServer(t)
	ctx, s := t.Context(), actions.Subjects{}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	first := actions.Send{ID: "s-1", ChatID: "c1", Content: "Hello"}
	if _, err := actions.ScheduleAt(ctx, js, first, at, s); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.ScheduleAt(ctx, js, first, at.Add(time.Hour), s); err != nil {
		t.Fatalf("the same command at another time: %v", err)
	}
	if l := list(t, js); len(l) != 1 || !l[0].At.Equal(at.Add(time.Hour)) {
		t.Fatalf("after moving it: %+v", l)
	}
	for _, other := range []actions.Commander{
		actions.Send{ID: "s-1", ChatID: "c1", Content: "Bye"},
		actions.Send{ID: "s-1", ChatID: "c2", Content: "Hello"},
		actions.Note{ID: "s-1", ChatID: "c1", Content: "Hello"},
	} {
		_, err := actions.ScheduleAt(ctx, js, other, at, s)
		var conflict *actions.ScheduleConflictError
		if !errors.Is(err, actions.ErrIDReused) || !errors.As(err, &conflict) || !conflict.Replaceable || !strings.Contains(err.Error(), "--replace") {
			t.Errorf("%+v scheduled over s-1: %v, want ErrIDReused naming --replace", other, err)
		}
	}
	if l := list(t, js); len(l) != 1 || l[0].ChatID != "c1" || l[0].Type != contract.TypeSend {
		t.Fatalf("refused schedules changed the pending one: %+v", l)
	}
	// Replacing with another chat removes the schedule under the old subject.
	if _, err := actions.ScheduleAt(ctx, js, actions.Send{ID: "s-1", ChatID: "c2", Content: "Bye"}, at, s, actions.WithReplace()); err != nil {
		t.Fatal(err)
	}
	if l := list(t, js); len(l) != 1 || l[0].ChatID != "c2" || !l[0].At.Equal(at) {
		t.Fatalf("after --replace: %+v, want only the c2 one", l)
	}

	store, err := idempotency.Open(ctx, js, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	taken := actions.Send{ID: "t-1", ChatID: "c1", Content: "Hello"}
	if _, err := store.Claim(ctx, "t-1", taken.Command().Hash()); err != nil {
		t.Fatal(err)
	}
	_, err = actions.ScheduleAt(ctx, js, actions.Send{ID: "t-1", ChatID: "c1", Content: "Bye"}, at, s, actions.WithReplace())
	var conflict *actions.ScheduleConflictError
	if !errors.Is(err, actions.ErrIDReused) || !errors.As(err, &conflict) || conflict.Replaceable {
		t.Errorf("an id the worker took, with another body: %v, want ErrIDReused that cannot be replaced", err)
	}
}

func TestScheduleRefusesAPastDeadline(t *testing.T) {
	js := schedulesServer(t)
	past := time.Now().Add(-time.Minute)
	calls := map[string]func() error{
		"ScheduleAt": func() error {
			_, err := actions.ScheduleAt(t.Context(), js, actions.Note{ChatID: "c", Content: "x", NotAfter: past}, past.Add(-time.Minute), actions.Subjects{})
			return err
		},
		"ScheduleDebounced": func() error {
			_, err := actions.ScheduleDebounced(t.Context(), js, actions.Note{ChatID: "c", Content: "x", NotAfter: past}, "k", time.Minute, actions.Subjects{})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); contract.ClassOf(err) != contract.ClassInvalid || !strings.Contains(err.Error(), "has passed") {
			t.Errorf("%s with not_after in the past: %v, want invalid, saying it has passed", name, err)
		}
	}
	if l := list(t, js); len(l) != 0 {
		t.Errorf("stored %+v", l)
	}
}

// Recurring schedules list with their recurrence and next firing; what NATS
// does not take is refused before it is stored.
func TestScheduleRecurring(t *testing.T) {
	js := schedulesServer(t)
	ctx, s := t.Context(), actions.Subjects{}
	daily, err := actions.ScheduleRecurring(ctx, js, actions.Send{ID: "daily", ChatID: "c1", Content: "Good morning"},
		actions.Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Europe/London"}, s)
	if err != nil {
		t.Fatal(err)
	}
	want := actions.Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Europe/London"}.Next(time.Now())
	if !daily.At.Equal(want) {
		t.Errorf("ScheduleRecurring's next firing = %s, want %s", daily.At, want)
	}
	if _, err := actions.ScheduleRecurring(ctx, js, actions.Archive{ID: "tidy", ChatID: "c2"}, actions.Recurrence{Every: 24 * time.Hour}, s); err != nil {
		t.Fatal(err)
	}
	l := list(t, js)
	if len(l) != 2 || l[0].Cron != "0 0 9 * * 1-5" || l[0].TZ != "Europe/London" || !l[0].At.Equal(want) || !l[0].Recurring() ||
		l[1].Every != "24h0m0s" || time.Until(l[1].At) < 23*time.Hour || l[1].Problem != "" {
		t.Fatalf("ListSchedules = %+v", l)
	}
	tests := []struct {
		name    string
		c       actions.Commander
		r       actions.Recurrence
		problem string
	}{
		{"zone with an interval", actions.Archive{ChatID: "c"}, actions.Recurrence{Every: time.Hour, TZ: "Europe/London"}, "not with an interval"},
		{"unknown zone", actions.Archive{ChatID: "c"}, actions.Recurrence{Cron: "@daily", TZ: "Mars/Olympus"}, "not an IANA zone"},
		{"five fields", actions.Archive{ChatID: "c"}, actions.Recurrence{Cron: "0 9 * * 1-5"}, "want 6"},
		{"a deadline", actions.Archive{ChatID: "c", NotAfter: time.Now().Add(time.Hour)}, actions.Recurrence{Every: time.Hour}, "no not_after"},
		{"id too long for its firings", actions.Archive{ID: strings.Repeat("x", contract.MaxScheduleIDBytes+1), ChatID: "c"}, actions.Recurrence{Every: time.Hour}, "each firing's id"},
	}
	for _, tt := range tests {
		_, err := actions.ScheduleRecurring(ctx, js, tt.c, tt.r, s)
		if contract.ClassOf(err) != contract.ClassInvalid || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("%s: %v, want invalid, mentioning %q", tt.name, err, tt.problem)
		}
	}
	if got := len(list(t, js)); got != 2 {
		t.Errorf("%d schedules after the refused ones, want 2", got)
	}
}

// A recurring schedule fires again and again, each firing named by its due
// second, and cancelling it ends the series. No worker runs: the fired
// commands wait in the work queue, where the test reads them.
func TestRecurringFiringsAreDistinct(t *testing.T) {
	js := schedulesServer(t)
	ctx, s := t.Context(), actions.Subjects{}
	if _, err := actions.ScheduleRecurring(ctx, js, actions.Note{ID: "tick", ChatID: "c1", Content: "tick"}, actions.Recurrence{Every: time.Second}, s); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	firings := func() []*jetstream.RawStreamMsg {
		var out []*jetstream.RawStreamMsg
		for seq := uint64(1); ; {
			m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.CommandsFilter()))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
			seq = m.Sequence + 1
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(firings()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d firings in 10 s of an every-second schedule", len(firings()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := actions.CancelSchedule(ctx, js, s, "tick"); err != nil {
		t.Fatalf("cancelling a recurring schedule, whatever its next firing: %v", err)
	}
	ids := map[string]bool{}
	var prev time.Time
	for _, m := range firings() {
		due, ok := contract.Firing(m.Header, m.Time)
		if !ok || due.Before(prev.Add(time.Second)) || m.Time.Before(due) {
			t.Fatalf("firing at %s (headers %v): due %s, %v; want a firing due on a later second than %s, not after it was stored", m.Time, m.Header, due, ok, prev)
		}
		prev = due
		ids[contract.FiringID("tick", due)] = true
	}
	n := len(firings())
	if len(ids) != n {
		t.Errorf("%d firings have %d ids", n, len(ids))
	}
	// The series has ended: nothing more fires (at most the one in flight
	// when it was cancelled).
	time.Sleep(2500 * time.Millisecond)
	if after := len(firings()); after > n+1 {
		t.Errorf("%d firings after the cancel, %d before it", after, n)
	}
	if l := list(t, js); len(l) != 0 {
		t.Errorf("after the cancel: %+v", l)
	}
}

// Debounce: of a burst under one key only the last is pending; a deadline
// carried from the first bounds how far the burst pushes it.
func TestScheduleDebounced(t *testing.T) {
	js := schedulesServer(t)
	ctx, s := t.Context(), actions.Subjects{}
	var last actions.Pending
	for i := range 5 {
		p, err := actions.ScheduleDebounced(ctx, js, actions.Send{ID: fmt.Sprintf("ev-%d", i), ChatID: "c1", Content: fmt.Sprintf("you have %d items in your cart", i+1)},
			"cart", 5*time.Minute, s)
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	other, err := actions.ScheduleDebounced(ctx, js, actions.Send{ID: "other-chat", ChatID: "c2", Content: "x"}, "cart", 5*time.Minute, s)
	if err != nil {
		t.Fatal(err)
	}
	l := list(t, js)
	if len(l) != 2 || l[0].ID != "ev-4" || l[0].DebounceKey != "cart" || !l[0].At.Equal(last.At) || l[1].ID != other.ID {
		t.Fatalf("after a burst of 5: %+v, want ev-4 for c1 and one for c2", l)
	}
	if st, err := actions.Status(ctx, js, "ev-4", s); err != nil || st.State != actions.StateScheduled || st.Schedule.DebounceKey != "cart" {
		t.Errorf("status of the pending debounced command: %+v, %v; want scheduled under the key", st, err)
	}
	if _, err := actions.CancelSchedule(ctx, js, s, "other-chat"); err != nil {
		t.Fatalf("cancel a debounced command by its id: %v", err)
	}

	deadline := time.Now().Add(90 * time.Second).Truncate(time.Second)
	if _, err := actions.ScheduleDebounced(ctx, js, actions.Note{ID: "n-1", ChatID: "c3", Content: "x", NotAfter: deadline}, "k", time.Minute, s); err != nil {
		t.Fatal(err)
	}
	p, err := actions.ScheduleDebounced(ctx, js, actions.Note{ID: "n-2", ChatID: "c3", Content: "x", NotAfter: deadline.Add(time.Hour)}, "k", time.Minute, s)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NotAfter.Equal(deadline) || !p.At.Before(deadline) {
		t.Errorf("the second of a burst with a deadline: due %s, not_after %s; want the first one's not_after %s kept, and due before it", p.At, p.NotAfter, deadline)
	}
	p, err = actions.ScheduleDebounced(ctx, js, actions.Note{ID: "n-3", ChatID: "c3", Content: "x"}, "k", 5*time.Minute, s)
	if err != nil || !p.At.Equal(deadline.Add(-time.Second)) {
		t.Errorf("pushed past its deadline: due %s, %v; want a second before %s", p.At, err, deadline)
	}
	for _, bad := range []string{"", strings.Repeat("k", actions.MaxDebounceKeyBytes+1)} {
		if _, err := actions.ScheduleDebounced(ctx, js, actions.Note{ChatID: "c", Content: "x"}, bad, time.Minute, s); contract.ClassOf(err) != contract.ClassInvalid {
			t.Errorf("key of %d bytes: %v, want invalid", len(bad), err)
		}
	}
}
