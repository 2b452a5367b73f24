package dlq

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
)

// Contract v2: a project's dead letters are listed with their project,
// selected by it, and replayed to the project's command subject, so their
// results come on the project's result subjects.
func TestDeadLettersOfAProject(t *testing.T) {
	p := newPipeline(t)
	ctx := t.Context()
	def := contract.Subjects{}.For(contract.DefaultProject)
	for _, c := range []actions.Commander{
		contract.Send{ID: "v2-1", ChatID: "jo@x", Content: "one"},
		contract.Note{ID: "v2-2", ChatID: "other", Content: "two"},
	} {
		if _, err := actions.Publish(ctx, p.js, c, def); err != nil {
			t.Fatal(err)
		}
	}
	p.publish(t, contract.Send{ID: "v1-1", ChatID: "jo@x", Content: "three"})
	p.waitDead(t, 3)
	p.waitIdle(t)

	all, err := p.q.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	projects := map[string]string{}
	for _, e := range all.Entries {
		projects[e.ID] = e.Project + "|" + e.Type + "|" + e.ChatID
	}
	if want := map[string]string{"v2-1": "default|send|jo@x", "v2-2": "default|note|other", "v1-1": "|send|jo@x"}; !maps.Equal(projects, want) {
		t.Fatalf("entries %v, want %v", projects, want)
	}
	for _, tt := range []struct {
		v    Values
		want []string
	}{
		{Values{Project: "default"}, []string{"v2-1", "v2-2"}},
		{Values{Project: "acme"}, []string{}},
		{Values{Chat: "jo@x"}, []string{"v1-1", "v2-1"}},
		{Values{Chat: "jo@x", Project: "default"}, []string{"v2-1"}},
		{Values{Type: "note"}, []string{"v2-2"}},
		{Values{Type: "send,invalid"}, []string{"v1-1", "v2-1"}},
		{Values{Type: "send", Project: "default"}, []string{"v2-1"}},
	} {
		f, err := ParseFilter(tt.v, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sel, err := p.q.List(ctx, f)
		if got := ids(sel.Entries); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", f, got, err, tt.want)
		}
	}
	if e, err := p.q.GetIn(ctx, "acme", "v2-1"); err == nil {
		t.Errorf("GetIn(acme, v2-1) = seq %d; want not found: it is the default project's", e.Seq)
	}

	p.sim.SetFaults(chatsim.Faults{}) // the API is fixed
	sel, err := p.q.List(ctx, Filter{Project: contract.DefaultProject})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := p.q.Replay(ctx, sel.Entries, ReplayOptions{}); err != nil || c.Replayed != 2 {
		t.Fatalf("replay: %+v, %v", c, err)
	}
	workertest.Eventually(t, time.Minute, func() bool { return len(p.results(t)) == 2 }, "results of the replayed commands")
	results, err := p.js.Stream(ctx, p.topo.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"chat.results.default.send.jo%40x", "chat.results.default.note.other"} {
		if m, err := results.GetLastMsgForSubject(ctx, want); err != nil {
			t.Errorf("no result on %s: %v", want, err)
		} else if r := string(m.Data); !strings.Contains(r, `"project":"default"`) {
			t.Errorf("result on %s: %s, want it to name its project", want, r)
		}
	}
}
