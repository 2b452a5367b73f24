package actions_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go/jetstream"
)

// pipeline is the shared harness with no worker until start, for tests
// that schedule before a worker runs.
type pipeline struct {
	*workertest.Harness
	js jetstream.JetStream
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	h := workertest.New(t, workertest.NoWorker(), workertest.WithConfig(func(c *consumer.Config) { c.Concurrency = 4 }))
	return &pipeline{Harness: h, js: h.JS}
}

func (p *pipeline) start(t *testing.T) {
	t.Helper()
	p.Start(p.Executor)
}

// results returns the results stored for chatID's commands of type t.
func (p *pipeline) results(t *testing.T, typ contract.Type, chatID string) []contract.Result {
	t.Helper()
	stream, err := p.js.Stream(t.Context(), contract.DefaultResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Result
	for seq := uint64(1); ; {
		m, err := stream.GetMsg(t.Context(), seq, jetstream.WithGetMsgSubject(actions.Subjects{}.Result(typ, chatID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var r contract.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
		seq = m.Sequence + 1
	}
}

// waitResults polls until chatID has n results, or fails after limit.
func (p *pipeline) waitResults(t *testing.T, typ contract.Type, chatID string, n int, limit time.Duration) []contract.Result {
	t.Helper()
	var rs []contract.Result
	got := 0
	workertest.Eventually(t, limit, func() bool {
		rs = p.results(t, typ, chatID)
		got = len(rs)
		return got >= n
	}, "results for %s: %d, want %d", chatID, &got, n)
	return rs
}

// A recurring schedule fires several times, and each firing is its own
// command with its own succeeded result: the idempotency store does not
// take the second for a duplicate of the first.
func TestRecurringScheduleRunsEachFiring(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	if _, err := actions.ScheduleRecurring(t.Context(), p.js, actions.Send{ID: "tick", ChatID: "c-every", Content: "tick"}, actions.Recurrence{Every: time.Second}, actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	rs := p.waitResults(t, contract.TypeSend, "c-every", 3, 15*time.Second)
	if _, err := actions.CancelSchedule(t.Context(), p.js, actions.Subjects{}, "tick"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rs[:3] {
		due, ok := strings.CutPrefix(r.ID, "tick@")
		if _, err := time.Parse(time.RFC3339, due); !ok || err != nil || r.Status != contract.StatusSucceeded || seen[r.ID] {
			t.Errorf("result %s %s: want a succeeded result of its own, id tick@<due time>", r.ID, r.Status)
		}
		seen[r.ID] = true
	}
	st, err := actions.Status(t.Context(), p.js, rs[0].ID, actions.Subjects{})
	if err != nil || st.State != actions.StateSucceeded {
		t.Errorf("status of the firing %s: %+v, %v", rs[0].ID, st, err)
	}
}

// A cron schedule in a named zone fires at that zone's time: an
// every-second cron cannot show the zone, so the test asks for the
// firings of the current local minute in a zone whose offset is not
// whole hours (Asia/Kathmandu, +05:45), and checks each firing's due time
// read there.
func TestCronScheduleInZone(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	loc, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	// Every second of the next two minutes in Kathmandu, named by hour and
	// minute: in UTC the same fields would name another time.
	start := time.Now().In(loc).Add(time.Second)
	r := actions.Recurrence{Cron: fmt.Sprintf("* %d,%d %d * * *", start.Minute(), start.Add(time.Minute).Minute(), start.Hour()), TZ: "Asia/Kathmandu"}
	if start.Add(time.Minute).Hour() != start.Hour() {
		r.Cron = fmt.Sprintf("* * %d,%d * * *", start.Hour(), start.Add(time.Minute).Hour())
	}
	if _, err := actions.ScheduleRecurring(t.Context(), p.js, actions.Note{ID: "ktm", ChatID: "c-cron", Content: "namaste"}, r, actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	rs := p.waitResults(t, contract.TypeNote, "c-cron", 2, 15*time.Second)
	if _, err := actions.CancelSchedule(t.Context(), p.js, actions.Subjects{}, "ktm"); err != nil {
		t.Fatal(err)
	}
	for _, res := range rs[:2] {
		due, err := time.Parse(time.RFC3339, strings.TrimPrefix(res.ID, "ktm@"))
		if err != nil || res.Status != contract.StatusSucceeded {
			t.Fatalf("result %s %s: want succeeded, id ktm@<due time>", res.ID, res.Status)
		}
		if local := due.In(loc); !r.Next(due.Add(-time.Second)).Equal(due) || local.Hour() != start.Hour() && local.Hour() != start.Add(time.Minute).Hour() {
			t.Errorf("firing due %s (%s in Kathmandu) is not a time of %s", due, local.Format("15:04:05"), r)
		}
	}
}

// Debounce: of a burst of five under one key only the last is sent.
func TestDebounceSendsOnlyTheLast(t *testing.T) {
	p := newPipeline(t)
	p.start(t)
	for i := range 5 {
		if _, err := actions.ScheduleDebounced(t.Context(), p.js, actions.Send{ID: fmt.Sprint("cart-", i), ChatID: "c-cart", Content: fmt.Sprintf("%d items in your cart", i+1)},
			"cart", 2*time.Second, actions.Subjects{}); err != nil {
			t.Fatal(err)
		}
	}
	p.waitResults(t, contract.TypeSend, "c-cart", 1, 15*time.Second)
	// Once the last has run nothing under the key is pending, so no
	// other can follow.
	if l, err := actions.ListSchedules(t.Context(), p.js, actions.Subjects{}); err != nil || len(l) != 0 {
		t.Fatalf("after the debounced send: %+v, %v; want nothing pending", l, err)
	}
	if rs := p.results(t, contract.TypeSend, "c-cart"); len(rs) != 1 || rs[0].ID != "cart-4" {
		t.Errorf("results %+v, want only cart-4's", rs)
	}
}
