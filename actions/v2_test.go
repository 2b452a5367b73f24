package actions_test

import (
	"errors"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/project"
)

// Contract v2: schedules of a project live on its subjects, fire to its
// command subject, and are listed, found and cancelled beside v1 ones.
func TestSchedulesOfAProject(t *testing.T) {
	js := schedulesServer(t)
	ctx, v1, acme := t.Context(), actions.Subjects{}, actions.Subjects{}.For("acme")
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	p, err := actions.ScheduleAt(ctx, js, actions.Send{ID: "v2-1", ChatID: "jo@x", Content: "hi"}, at, acme)
	if err != nil {
		t.Fatal(err)
	}
	if want := "chat.schedules.acme.send.jo%40x.v2-1"; p.Subject != want {
		t.Fatalf("v2 schedule on %q, want %q", p.Subject, want)
	}
	stream, err := js.Stream(ctx, contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(ctx, p.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Header.Get(actions.HeaderScheduleTarget), "chat.commands.acme.send.jo%40x"; got != want {
		t.Fatalf("target %q, want the project's command subject %q", got, want)
	}
	if _, err := actions.ScheduleAt(ctx, js, actions.Note{ID: "v1-1", ChatID: "c", Content: "hi"}, at, v1); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.ScheduleDebounced(ctx, js, actions.Send{ID: "v2-d", ChatID: "c", Content: "hi"}, "k", time.Hour, acme); err != nil {
		t.Fatal(err)
	}

	// Read without a project, every schedule shows, each with its project,
	// whatever its body says.
	l, err := actions.ListSchedules(ctx, js, v1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range l {
		got[p.ID] = p.Project + "/" + string(p.Type) + "/" + p.ChatID
	}
	want := map[string]string{"v2-1": "acme/send/jo@x", "v1-1": "/note/c", "v2-d": "acme/send/c"}
	if len(got) != len(want) || got["v2-1"] != want["v2-1"] || got["v1-1"] != want["v1-1"] || got["v2-d"] != want["v2-d"] {
		t.Fatalf("listed %v, want %v", got, want)
	}
	// Read for the project, only its own.
	if l, err = actions.ListSchedules(ctx, js, acme); err != nil || len(l) != 2 || l[0].Project != "acme" || l[1].Project != "acme" {
		t.Fatalf("the project's schedules: %+v, %v", l, err)
	}

	// Status and cancel find a v2 schedule without being told its project.
	st, err := actions.Status(ctx, js, "v2-1", v1)
	if err != nil || st.State != actions.StateScheduled || st.Schedule.Project != "acme" {
		t.Fatalf("status of v2-1: %+v, %v", st, err)
	}
	for _, id := range []string{"v2-1", "v2-d"} {
		done, err := actions.CancelSchedule(ctx, js, v1, id)
		if err != nil || len(done) != 1 || done[0].ID != id || done[0].Project != "acme" {
			t.Fatalf("cancel %s: %+v, %v", id, done, err)
		}
	}
	// Cancelling for another project does not reach v1's.
	if _, err := actions.CancelSchedule(ctx, js, acme, "v1-1"); !errors.Is(err, actions.ErrNoSchedule) {
		t.Fatalf("cancel v1-1 in project acme: %v, want ErrNoSchedule", err)
	}
	if l = list(t, js); len(l) != 1 || l[0].ID != "v1-1" {
		t.Fatalf("left: %+v", l)
	}
}

// A v1 debounced command whose key reads as an id is not that id's
// schedule: the key is not an id.
func TestCancelDoesNotTakeADebounceKeyForAnID(t *testing.T) {
	js := schedulesServer(t)
	ctx := t.Context()
	if _, err := actions.ScheduleDebounced(ctx, js, actions.Send{ID: "other", ChatID: "c", Content: "hi"}, "x-1", time.Hour, actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.CancelSchedule(ctx, js, actions.Subjects{}, "x-1"); !errors.Is(err, actions.ErrNoSchedule) {
		t.Fatalf("cancel x-1: %v, want ErrNoSchedule (x-1 is a debounce key)", err)
	}
	if done, err := actions.CancelSchedule(ctx, js, actions.Subjects{}, "other"); err != nil || len(done) != 1 {
		t.Fatalf("cancel other: %+v, %v", done, err)
	}
}

// A waiting v2 command's project is the one its subject names, whatever
// its body says, so status says why it waits when that project is paused.
func TestStatusOfAWaitingCommandNamesItsProject(t *testing.T) {
	js := schedulesServer(t)
	ctx := t.Context()
	states, err := project.Open(ctx, js, project.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := states.PauseByOperator(ctx, "acme", "maintenance", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.Publish(ctx, js, actions.Send{ID: "w-1", ChatID: "c", Content: "hi"}, actions.Subjects{}.For("acme")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []actions.Subjects{{}, actions.Subjects{}.For("acme")} {
		st, err := actions.Status(ctx, js, "w-1", s)
		if err != nil || st.State != actions.StateWaiting || st.Project != "acme" || st.Paused == nil {
			t.Fatalf("status with %+v: %+v, %v; want waiting for the paused project acme", s, st, err)
		}
	}
	// Another project's reader does not see it.
	if _, err := actions.Status(ctx, js, "w-1", actions.Subjects{}.For("other")); !errors.Is(err, actions.ErrUnknownCommand) {
		t.Fatalf("status in project other: %v, want ErrUnknownCommand", err)
	}
}
