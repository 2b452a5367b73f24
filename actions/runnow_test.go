package actions_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
)

// Running a one-shot schedule now: its command runs once, with a result,
// long before its time, and the schedule is gone.
func TestRunNowOneShot(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	if _, err := actions.ScheduleAt(t.Context(), p.js, actions.Send{ID: "later", ChatID: "c-now", Content: "hi"}, time.Now().Add(time.Hour), actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	ran, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, "later")
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 || ran[0].Command != "later" || ran[0].Kept || ran[0].Duplicate {
		t.Fatalf("RunNow returned %+v, want the schedule of later, run under its id and removed", ran)
	}
	rs := p.waitResults(t, contract.TypeSend, "c-now", 1, 10*time.Second)
	if rs[0].ID != "later" || rs[0].Status != contract.StatusSucceeded {
		t.Errorf("result %s %s, want later succeeded", rs[0].ID, rs[0].Status)
	}
	if list, err := actions.ListSchedules(t.Context(), p.js, actions.Subjects{}); err != nil || len(list) != 0 {
		t.Errorf("schedules after run now: %+v, %v; want none", list, err)
	}
	p.Settled()
	if n := p.EffectsByKey()["later"]; n != 1 {
		t.Errorf("%d effects of later, want 1", n)
	}
	if _, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, "later"); !errors.Is(err, actions.ErrNoSchedule) {
		t.Errorf("running it again: %v, want ErrNoSchedule", err)
	}
}

// Running a recurring schedule now fires one firing, under a firing id of
// its own, and keeps the series with its next firing.
func TestRunNowRecurringKeepsSeries(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	want, err := actions.ScheduleRecurring(t.Context(), p.js, actions.Note{ID: "daily", ChatID: "c-daily", Content: "report"}, actions.Recurrence{Every: 24 * time.Hour}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	ran, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, "daily")
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 || !ran[0].Kept || !strings.HasPrefix(ran[0].Command, "daily@") {
		t.Fatalf("RunNow returned %+v, want one firing daily@<now>, the series kept", ran)
	}
	rs := p.waitResults(t, contract.TypeNote, "c-daily", 1, 10*time.Second)
	if rs[0].ID != ran[0].Command || rs[0].Status != contract.StatusSucceeded {
		t.Errorf("result %s %s, want %s succeeded", rs[0].ID, rs[0].Status, ran[0].Command)
	}
	list, err := actions.ListSchedules(t.Context(), p.js, actions.Subjects{})
	if err != nil || len(list) != 1 || list[0].ID != "daily" || !list[0].At.Equal(want.At) || list[0].Every != "24h0m0s" {
		t.Errorf("schedules after run now: %+v, %v; want daily, next at %s", list, err, want.At)
	}
}

// A run-now whose schedule could not be removed (the process died between
// the publish and the removal) leaves the schedule to fire at its time: the
// command then comes a second time under the same id, and the worker
// answers it with a duplicate result, without a second effect. The test
// publishes what RunNow publishes and leaves the schedule in place.
func TestRunNowInterruptedFiresAsDuplicate(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	cmd := actions.Send{ID: "half", ChatID: "c-half", Content: "once"}
	if _, err := actions.ScheduleAt(t.Context(), p.js, cmd, time.Now().Add(2*time.Second), actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.Publish(t.Context(), p.js, cmd, actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	rs := p.waitResults(t, contract.TypeSend, "c-half", 2, 15*time.Second)
	if rs[0].Status != contract.StatusSucceeded || rs[1].Status != contract.StatusDuplicate {
		t.Errorf("results %s then %s, want succeeded then duplicate", rs[0].Status, rs[1].Status)
	}
	p.Settled()
	if n := p.EffectsByKey()["half"]; n != 1 {
		t.Errorf("%d effects of half, want 1", n)
	}
}

func TestRunNowRefuses(t *testing.T) {
	p := newPipeline(t)
	for _, tc := range []struct {
		name, id string
		want     func(error) bool
	}{
		{"unknown id", "nobody", func(err error) bool { return errors.Is(err, actions.ErrNoSchedule) }},
		{"empty id", "", func(err error) bool { return contract.ClassOf(err) == contract.ClassInvalid }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, tc.id)
			if !tc.want(err) || ran != nil {
				t.Errorf("RunNow(%q) = %+v, %v", tc.id, ran, err)
			}
		})
	}
	// A schedule whose body cannot be read is refused, not run.
	p.PublishRaw(actions.Subjects{}.Schedule(contract.TypeSend, "c-bad", "bad"), "", []byte("{not json"))
	ran, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, "bad")
	if contract.ClassOf(err) != contract.ClassInvalid || ran != nil {
		t.Errorf("RunNow of an unreadable schedule = %+v, %v; want it refused", ran, err)
	}
	if n := p.Count(contract.DefaultCommandsStream); n != 1 {
		t.Errorf("%d messages in the commands stream, want the schedule alone", n)
	}
}

// Running a v2 schedule now without naming its project publishes its
// command on its project's subject, not on the v1 one.
func TestRunNowKeepsTheSchedulesProject(t *testing.T) {
	p := newPipeline(t)
	acme := actions.Subjects{}.For("acme")
	if _, err := actions.ScheduleAt(t.Context(), p.js, actions.Send{ID: "v2-later", ChatID: "c-v2", Content: "hi"}, time.Now().Add(time.Hour), acme); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.RunNow(t.Context(), p.js, actions.Subjects{}, "v2-later"); err != nil {
		t.Fatal(err)
	}
	stream, err := p.js.Stream(t.Context(), contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.GetLastMsgForSubject(t.Context(), acme.Command(contract.TypeSend, "c-v2")); err != nil {
		t.Errorf("no command on %s: %v", acme.Command(contract.TypeSend, "c-v2"), err)
	}
	if m, err := stream.GetLastMsgForSubject(t.Context(), actions.Subjects{}.Command(contract.TypeSend, "c-v2")); err == nil {
		t.Errorf("the v2 schedule's command went to the v1 subject %s", m.Subject)
	}
}
