package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// settle publishes c and waits for its result or dead letter.
func settle(t *testing.T, h *workertest.Harness, c actions.Commander) actions.Settled {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, s, err := actions.PublishAndWait(ctx, h.JS, c, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// effectsFor counts the API calls that had an effect on chat.
func effectsFor(h *workertest.Harness, chat string) int {
	n := 0
	for _, e := range h.Sim.Effects() {
		if e.ChatID == chat {
			n++
		}
	}
	return n
}

// projectsHarness is a harness whose worker knows its projects and shares
// their states (and settings) in NATS; the worker is not started.
func projectsHarness(t *testing.T, m *consumer.Metrics) (*workertest.Harness, *project.Store) {
	t.Helper()
	h := workertest.New(t, workertest.NoWorker(), workertest.WithConfig(func(c *consumer.Config) { c.Metrics = m }))
	states, err := project.Open(t.Context(), h.JS, project.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h.Config.Projects = h.Executor
	h.Config.ProjectStates = states
	return h, states
}

// cappedMetric is chatworker_commands_capped_total of project.
func cappedMetric(t *testing.T, reg *prometheus.Registry, project string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "chatworker_commands_capped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "project" && l.GetValue() == project }) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A send over its chat's cap is not sent: it becomes a dead letter of class
// capped, without an attempt, counted in the metric; other chats and other
// types are not held to it; a replay of the dead letter sends it anyway.
func TestFrequencyCapStopsTheSendOverIt(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	h := workertest.New(t, workertest.WithConfig(func(c *consumer.Config) { c.Metrics = m }))
	capped := &actions.FrequencyCap{Max: 2, Per: "24h"}
	for i := range 2 {
		s := settle(t, h, actions.Send{ID: fmt.Sprintf("promo-%d", i), ChatID: "visitor-1", Content: "A deal", FrequencyCap: capped})
		if s.Result == nil {
			t.Fatalf("send %d under the cap: %s, want a result", i, s.Data)
		}
	}
	s := settle(t, h, actions.Send{ID: "promo-2", ChatID: "visitor-1", Content: "A deal", FrequencyCap: capped})
	dl := s.DeadLetter
	if dl == nil || dl.Error.Class != contract.ClassCapped || dl.Attempts != 0 || !strings.Contains(dl.Error.Message, "2/24h") {
		t.Fatalf("the send over the cap: %s, want a capped dead letter without attempts naming the cap", s.Data)
	}
	if n := effectsFor(h, "visitor-1"); n != 2 {
		t.Fatalf("%d sends reached visitor-1, want 2", n)
	}
	// The metric moves just after the dead letter is stored.
	workertest.Eventually(t, 10*time.Second, func() bool { return cappedMetric(t, reg, "default") == 1 },
		"chatworker_commands_capped_total{project=\"default\"} never reached 1")
	// The cap is the chat's: another chat, and a note to this one, go ahead.
	if s := settle(t, h, actions.Send{ID: "promo-other", ChatID: "visitor-2", Content: "A deal", FrequencyCap: capped}); s.Result == nil {
		t.Errorf("a send to another chat: %s, want a result", s.Data)
	}
	if s := settle(t, h, actions.Note{ID: "note-1", ChatID: "visitor-1", Content: "capped a promo"}); s.Result == nil {
		t.Errorf("a note: %s, want a result", s.Data)
	}

	q, err := dlq.Open(t.Context(), h.JS, dlq.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := q.List(t.Context(), dlq.Filter{Classes: []contract.Class{contract.ClassCapped}})
	if err != nil || len(sel.Entries) != 1 {
		t.Fatalf("capped dead letters: %+v, %v; want one", sel.Entries, err)
	}
	if c, err := q.Replay(t.Context(), sel.Entries, dlq.ReplayOptions{}); err != nil || c.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", c, err)
	}
	if r := h.Results(5)[4]; r.ID != "promo-2" || r.Status != contract.StatusSucceeded {
		t.Fatalf("after the replay: %+v, want promo-2 succeeded", r)
	}
	if n := effectsFor(h, "visitor-1"); n != 3+1 { // the three sends and the note
		t.Errorf("%d calls reached visitor-1 after the replay, want 4", n)
	}
}

// A project's default cap holds its sends that carry none; a send's own cap
// replaces it, and another project is not held to it.
func TestProjectDefaultCapApplies(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	h, states := projectsHarness(t, m)
	if _, err := states.SetSettings(t.Context(), "default", project.Settings{FrequencyCap: &contract.FrequencyCap{Max: 1, Per: "1h"}}); err != nil {
		t.Fatal(err)
	}
	h.Start(h.Executor)
	if s := settle(t, h, actions.Send{ID: "d-1", ChatID: "v-1", Content: "first"}); s.Result == nil {
		t.Fatalf("the first send: %s, want a result", s.Data)
	}
	s := settle(t, h, actions.Send{ID: "d-2", ChatID: "v-1", Content: "second"})
	if dl := s.DeadLetter; dl == nil || dl.Error.Class != contract.ClassCapped || !strings.Contains(dl.Error.Message, "default cap of project default") {
		t.Fatalf("the second send: %s, want a capped dead letter naming the project's default", s.Data)
	}
	if s := settle(t, h, actions.Send{ID: "d-3", ChatID: "v-1", Content: "own cap", FrequencyCap: &contract.FrequencyCap{Max: 5, Per: "1h"}}); s.Result == nil {
		t.Fatalf("a send with its own, larger cap: %s, want a result", s.Data)
	}
	// The metric moves just after the dead letter is stored.
	workertest.Eventually(t, 10*time.Second, func() bool { return cappedMetric(t, reg, "default") == 1 },
		"chatworker_commands_capped_total{project=\"default\"} never reached 1")
}

// quietZone finds a zone whose local time is now well inside 21:00-08:00
// (between 22:00 and 07:00, so that the window holds for the whole test).
func quietZone(t *testing.T) string {
	t.Helper()
	for off := -12; off <= 14; off++ {
		// Etc/GMT-N is N hours east of Greenwich.
		name := fmt.Sprintf("Etc/GMT%+d", -off)
		if off == 0 {
			name = "Etc/GMT"
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		if h := time.Now().In(loc).Hour(); h >= 22 || h < 7 {
			return name
		}
	}
	t.Fatal("no zone has its night now")
	return ""
}

// A project's default quiet hours hold its sends that carry none, applied
// by a running worker moments after they are set: a send whose deadline
// falls inside the window expires, with no call. A send with its own quiet
// hours, and a note, are not held by the project's.
func TestProjectDefaultQuietHoursHold(t *testing.T) {
	h, states := projectsHarness(t, nil)
	h.Start(h.Executor)
	if s := settle(t, h, actions.Send{ID: "before", ChatID: "q-1", Content: "hi", NotAfter: time.Now().Add(time.Minute)}); s.Result == nil {
		t.Fatalf("a send before the project has quiet hours: %s, want a result", s.Data)
	}
	zone := quietZone(t)
	if _, err := states.SetSettings(t.Context(), "default", project.Settings{QuietHours: &contract.QuietHours{Start: "21:00", End: "08:00", TZ: zone}}); err != nil {
		t.Fatal(err)
	}
	// The worker is not restarted: the settings reach it through its view.
	var held actions.Settled
	for i := 0; ; i++ {
		held = settle(t, h, actions.Send{ID: fmt.Sprintf("probe-%d", i), ChatID: "q-1", Content: "hi", NotAfter: time.Now().Add(time.Minute)})
		if held.DeadLetter != nil || i == 50 {
			break
		}
	}
	dl := held.DeadLetter
	if dl == nil || dl.Error.Class != contract.ClassExpired || dl.Attempts != 0 || !strings.Contains(dl.Error.Message, zone) {
		t.Fatalf("a send inside the project's quiet hours: %s, want an expired dead letter without attempts naming %s", held.Data, zone)
	}
	calls := effectsFor(h, "q-1")
	own := &contract.QuietHours{Start: "12:00", End: "12:01", TZ: zone} // not now: the zone's clock is at night
	if s := settle(t, h, actions.Send{ID: "own", ChatID: "q-2", Content: "hi", QuietHours: own}); s.Result == nil {
		t.Errorf("a send with its own quiet hours: %s, want a result", s.Data)
	}
	if s := settle(t, h, actions.Note{ID: "note", ChatID: "q-3", Content: "hi"}); s.Result == nil {
		t.Errorf("a note: %s, want a result", s.Data)
	}
	if _, err := states.ClearSettings(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	if n := effectsFor(h, "q-1"); n != calls {
		t.Errorf("%d calls to q-1 after the project's quiet hours began, want none", n-calls)
	}
}

// A send counted once is not counted again, when its command is delivered
// again after its success (a crash before the acknowledgement), and is not
// held to a cap by its own send.
func TestCapCountsASendOnce(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	caps, err := consumer.OpenChatCaps(t.Context(), js, consumer.CapsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range 2 {
		if err := caps.Count(t.Context(), "default.chat", "a", now); err != nil {
			t.Fatal(err)
		}
	}
	if err := caps.Count(t.Context(), "default.chat", "b", now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id    string
		since time.Time
		want  int
	}{
		{"", now.Add(-time.Hour), 1},
		{"", now.Add(-3 * time.Hour), 2},
		{"a", now.Add(-time.Hour), 0},
		{"b", now.Add(-3 * time.Hour), 1},
	} {
		if got, err := caps.Sent(t.Context(), "default.chat", tt.id, tt.since); err != nil || got != tt.want {
			t.Errorf("Sent(other than %q, since %s) = %d, %v; want %d", tt.id, tt.since.Format(time.TimeOnly), got, err, tt.want)
		}
	}
}
