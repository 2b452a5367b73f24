package consumer_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// schedule stores c to run at at, as an app would.
func (p *pipeline) schedule(c actions.Commander, at time.Time) actions.Pending {
	p.T.Helper()
	pend, err := actions.ScheduleAt(p.T.Context(), p.JS, c, at, actions.Subjects{})
	if err != nil {
		p.T.Fatal(err)
	}
	return pend
}

// startStoppable runs a worker until the returned function is called.
func (p *pipeline) startStoppable() (stop func()) {
	p.T.Helper()
	_, stop = p.StartStoppable(p.Executor, p.Config)
	p.T.Cleanup(stop)
	topo := p.Config.Topology.WithDefaults()
	cons, err := p.JS.Consumer(p.T.Context(), topo.CommandsStream, topo.Durable)
	if err != nil {
		p.T.Fatal(err)
	}
	// Running means pulling: a stop during its start-up is another test.
	workertest.Eventually(p.T, 10*time.Second, func() bool {
		info, err := cons.Info(p.T.Context())
		return err == nil && info.NumWaiting > 0
	}, "the worker is pulling")
	return stop
}

// A scheduled command runs no sooner than its time and within a second of
// it, through the worker like any other command. The server's times are
// whole seconds: a time within a second is rounded up, never down.
func TestScheduleFiresOnTime(t *testing.T) {
	tests := []struct {
		name string
		frac time.Duration // past the whole second
	}{
		{"whole second", 0},
		{"half a second", 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t)
			whole := time.Now().Add(2 * time.Second).Truncate(time.Second)
			at := whole.Add(tt.frac)
			pend := p.schedule(actions.Send{ChatID: "sched-1", Content: "a day after sign-up"}, at)
			if pend.At.Before(at) || pend.Subject != "chat.schedules.send.sched-1."+contract.Token(pend.ID) {
				t.Errorf("pending %+v, want at or after %s on chat.schedules.send.sched-1.<id>", pend, at)
			}
			res := p.Results(1)[0]
			if res.ID != pend.ID || res.Status != contract.StatusSucceeded {
				t.Fatalf("result %+v, want %s succeeded", res, pend.ID)
			}
			effects := p.Sim.Effects()
			if len(effects) != 1 {
				t.Fatalf("%d effects, want 1", len(effects))
			}
			if called := effects[0].At; called.Before(at) || called.After(pend.At.Add(time.Second)) {
				t.Errorf("the API call came at %s, want no sooner than %s and within a second of %s",
					called.Format(time.StampMilli), at.Format(time.StampMilli), pend.At.Format(time.StampMilli))
			}
			p.Settled() // the schedule is gone with its command
			if left, err := actions.ListSchedules(t.Context(), p.JS, actions.Subjects{}); err != nil || len(left) != 0 {
				t.Errorf("ListSchedules after firing = %v, %v; want none", left, err)
			}
		})
	}
}

// A cancelled schedule never runs. The witness is scheduled for the same
// chat and second after it: the server fires a second's schedules in the
// order they were stored and the worker keeps a chat's order, so the
// witness's result means the cancelled command's turn has passed.
func TestCancelledScheduleNeverRuns(t *testing.T) {
	p := newPipeline(t)
	at := time.Now().Add(4 * time.Second).Truncate(time.Second)
	cancelled := p.schedule(actions.Send{ChatID: "sched-c", Content: "cancel me"}, at)
	witness := p.schedule(actions.Send{ChatID: "sched-c", Content: "witness"}, at)

	list, err := actions.ListSchedules(t.Context(), p.JS, actions.Subjects{})
	if err != nil || len(list) != 2 || list[0].ID != cancelled.ID || list[1].ID != witness.ID || !list[0].At.Equal(at) ||
		list[0].Type != contract.TypeSend || list[0].ChatID != "sched-c" {
		t.Fatalf("ListSchedules = %+v, %v; want the two schedules in order", list, err)
	}
	got, err := actions.CancelSchedule(t.Context(), p.JS, actions.Subjects{}, cancelled.ID)
	if err != nil || len(got) != 1 || got[0].ID != cancelled.ID {
		t.Fatalf("CancelSchedule = %+v, %v", got, err)
	}
	if _, err := actions.CancelSchedule(t.Context(), p.JS, actions.Subjects{}, cancelled.ID); !errors.Is(err, actions.ErrNoSchedule) {
		t.Errorf("cancelling again: %v, want ErrNoSchedule", err)
	}

	res := p.Results(1)[0]
	if res.ID != witness.ID {
		t.Fatalf("result for %s, want only the witness %s", res.ID, witness.ID)
	}
	p.Settled()
	for _, e := range p.Sim.Effects() {
		if e.IdempotencyKey == cancelled.ID {
			t.Fatalf("the cancelled command took effect")
		}
	}
	if n := p.Count("CHAT_RESULTS") + p.Count("CHAT_DLQ"); n != 1 {
		t.Errorf("%d results and dead letters, want the witness's only", n)
	}
	// Fired: cancelling is too late, and says so.
	if _, err := actions.CancelSchedule(t.Context(), p.JS, actions.Subjects{}, witness.ID); !errors.Is(err, actions.ErrNoSchedule) {
		t.Errorf("cancelling a fired schedule: %v, want ErrNoSchedule", err)
	}
}

func TestCancelRefusals(t *testing.T) {
	p := newBarePipeline(t) // no worker: nothing fires while the test looks
	soon := p.schedule(actions.Archive{ChatID: "sched-soon"}, time.Now().Add(time.Second))
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"unknown id", "no-such-id", actions.ErrNoSchedule},
		{"due within the margin", soon.ID, actions.ErrTooLate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := actions.CancelSchedule(t.Context(), p.JS, actions.Subjects{}, tt.id)
			if !errors.Is(err, tt.want) {
				t.Errorf("CancelSchedule(%q) = %v, want %v", tt.id, err, tt.want)
			}
		})
	}
	if _, err := actions.CancelSchedule(t.Context(), p.JS, actions.Subjects{}, ""); contract.ClassOf(err) != contract.ClassInvalid {
		t.Errorf("empty id: %v, want class invalid", err)
	}
}

// A schedule is data in the stream, not a timer in a worker: it survives a
// restart of the NATS server (file storage) and of the worker, and its
// command runs once.
func TestScheduleSurvivesServerAndWorkerRestarts(t *testing.T) {
	p := newBarePipeline(t)
	stop := p.startStoppable()
	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	pend := p.schedule(actions.Note{ChatID: "sched-r", Content: "still here"}, at)

	stop() // the worker goes away
	p.Server = natstest.RestartServer(t, p.Server)
	workertest.Eventually(t, 10*time.Second, func() bool { return p.NC.IsConnected() }, "client reconnected")
	list, err := actions.ListSchedules(t.Context(), p.JS, actions.Subjects{})
	if err != nil || len(list) != 1 || list[0].ID != pend.ID {
		t.Fatalf("after the restart ListSchedules = %+v, %v; want %s", list, err, pend.ID)
	}
	p.startStoppable() // a new worker

	res := p.Results(1)[0]
	p.Settled()
	if res.ID != pend.ID || len(p.Sim.Effects()) != 1 {
		t.Fatalf("result %+v and %d effects, want one of %s", res, len(p.Sim.Effects()), pend.ID)
	}
	if called := p.Sim.Effects()[0].At; called.Before(at) {
		t.Errorf("ran at %s, before its time %s", called, at)
	}
}

// 1,000 schedules due in the same second all run, each exactly once, and
// each chat's commands run in the order they were scheduled.
func TestThousandSchedulesInOneSecond(t *testing.T) {
	p := newPipeline(t)
	const chats, perChat = 50, 20
	// Time to store them all first: the second must not begin while they
	// are being published.
	at := time.Now().Add(8 * time.Second).Truncate(time.Second)
	ids := map[string]bool{}
	for i := range perChat {
		for c := range chats {
			pend := p.schedule(actions.Send{ChatID: fmt.Sprintf("many-%d", c), Content: strconv.Itoa(i)}, at)
			ids[pend.ID] = true
		}
	}
	if time.Now().After(at) {
		t.Fatalf("publishing the schedules outlasted their time; the test proves nothing")
	}
	p.Results(chats * perChat)
	p.Settled()

	next := map[string]int{}
	seen := map[string]bool{}
	for _, e := range p.Sim.Effects() {
		if seen[e.IdempotencyKey] || !ids[e.IdempotencyKey] {
			t.Errorf("command %s: an effect twice, or not one of ours", e.IdempotencyKey)
		}
		seen[e.IdempotencyKey] = true
		if e.At.Before(at) {
			t.Errorf("command %s ran at %s, before %s", e.IdempotencyKey, e.At, at)
		}
		if want := strconv.Itoa(next[e.ChatID]); e.Content != want {
			t.Errorf("chat %s: effect %q arrived when %q was next", e.ChatID, e.Content, want)
		}
		next[e.ChatID]++
	}
	if len(seen) != chats*perChat {
		t.Errorf("%d commands took effect, want %d", len(seen), chats*perChat)
	}
	if n := p.Count("CHAT_RESULTS"); n != chats*perChat {
		t.Errorf("%d results, want %d", n, chats*perChat)
	}
}

// "Send at 09:00, but not after 09:15": a scheduled command keeps its
// deadline. One runs within it; one whose deadline passes before any worker
// takes it expires without an API call.
func TestScheduleWithDeadline(t *testing.T) {
	p := newBarePipeline(t)
	at := time.Now().Add(2 * time.Second).Truncate(time.Second)
	onTime := p.schedule(actions.Send{ChatID: "sched-d1", Content: "on time", NotAfter: at.Add(time.Hour)}, at)
	late := p.schedule(actions.Send{ChatID: "sched-d2", Content: "too late", NotAfter: at.Add(time.Second)}, at)

	// No worker yet: both fire into the stream; then the second's deadline
	// passes.
	workertest.Eventually(t, 10*time.Second, func() bool {
		list, err := actions.ListSchedules(t.Context(), p.JS, actions.Subjects{})
		return err == nil && len(list) == 0
	}, "both schedules fired")
	workertest.Eventually(t, 10*time.Second, func() bool { return time.Now().After(late.NotAfter) }, "the deadline passed")
	p.startStoppable()

	res := p.Results(1)[0]
	dl := p.DeadLetters(1)[0]
	p.Settled()
	if res.ID != onTime.ID {
		t.Errorf("result for %s, want %s", res.ID, onTime.ID)
	}
	if dl.Error.Class != contract.ClassExpired || dl.Attempts != 0 {
		t.Errorf("dead letter class %q, %d attempts; want expired, 0", dl.Error.Class, dl.Attempts)
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
	// A schedule that would fire at or after its own deadline is refused.
	if _, err := actions.ScheduleAt(t.Context(), p.JS, actions.Send{ChatID: "x", Content: "x", NotAfter: at}, at, actions.Subjects{}); contract.ClassOf(err) != contract.ClassInvalid {
		t.Errorf("a schedule at its deadline: %v, want class invalid", err)
	}
}

// Provisioning adds schedules to an existing commands stream in place: the
// commands waiting in it stay.
func TestProvisionAddsSchedulesToAnExistingStream(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	// The stream as the first release made it.
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "CHAT_COMMANDS", Subjects: []string{"chat.commands.>"},
		Retention: jetstream.WorkQueuePolicy, MaxAge: 7 * 24 * time.Hour, Duplicates: 10 * time.Minute, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	waiting, err := actions.Publish(t.Context(), js, actions.Archive{ChatID: "old"}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), "CHAT_COMMANDS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), "chat.commands.archive.old")
	if err != nil || m.Header.Get(nats.MsgIdHdr) != waiting.ID {
		t.Fatalf("the waiting command: %v, %v", m, err)
	}
	if _, err := actions.ScheduleAt(t.Context(), js, actions.Archive{ChatID: "new"}, time.Now().Add(time.Hour), actions.Subjects{}); err != nil {
		t.Fatalf("scheduling after the upgrade: %v", err)
	}
}
