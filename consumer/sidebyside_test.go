package consumer_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
)

// TestV1AndV2PublishersSideBySide runs v1 and v2 publishers against one
// worker serving two projects, the default one named "main" and "b": each
// command runs with its project's key (the simulator refuses any other
// pair), and its result or dead letter is on its own version's subjects,
// carrying the project's name for v2.
func TestV1AndV2PublishersSideBySide(t *testing.T) {
	p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kb": {"sb"}}))
	client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
	if err != nil {
		t.Fatal(err)
	}
	exec := &execute.Executor{Client: client, SiteToken: "sa", Default: "main", Projects: map[string]chat.Credentials{"b": {APIKey: "kb", SiteToken: "sb"}}}
	cfg := p.Config
	cfg.Projects = exec
	p.startWorker(exec, cfg)

	v2 := func(project, id, chatID, site string) {
		fields := map[string]string{"id": id, "type": "note", "chat_id": chatID, "content": "x"}
		if site != "" {
			fields["site_token"] = site
		}
		body, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		p.PublishRaw(contract.Subjects{}.For(project).Command(contract.TypeNote, chatID), id, body)
	}
	p.Publish(actions.Note{ID: "v1-default", ChatID: "c", Content: "x"})
	p.Publish(actions.Note{ID: "v1-b", ChatID: "c-b", Content: "x", SiteToken: "sb"})
	v2("main", "v2-main", "c", "")
	v2("b", "v2-b", "c-b", "")
	v2("b", "v2-b-own-token", "c-b2", "sb")
	v2("b", "v2-b-wrong-token", "c-b3", "sa")

	want := map[string]string{ // id to the subject of its record
		"v1-default":       "chat.results.note.c",
		"v1-b":             "chat.results.note.c-b",
		"v2-main":          "chat.results.main.note.c",
		"v2-b":             "chat.results.b.note.c-b",
		"v2-b-own-token":   "chat.results.b.note.c-b2",
		"v2-b-wrong-token": "chat.dlq.b.note.c-b3",
	}
	got := map[string]string{}
	project := map[string]string{}
	for _, m := range p.Records("CHAT_RESULTS", 5) {
		var r actions.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		got[r.ID], project[r.ID] = m.Subject, r.Project
	}
	for _, m := range p.Records("CHAT_DLQ", 1) {
		var d actions.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		cmd, _ := contract.DecodeBody(d.Body())
		got[cmd.ID], project[cmd.ID] = m.Subject, d.Project
		if d.Error.Class != contract.ClassInvalid {
			t.Errorf("dead letter of %s: %s %q, want invalid", cmd.ID, d.Error.Class, d.Error.Message)
		}
	}
	if !maps.Equal(got, want) {
		for _, id := range slices.Sorted(maps.Keys(want)) {
			t.Logf("%s: %q, want %q", id, got[id], want[id])
		}
		t.Error("records on the wrong subjects")
	}
	for id, name := range map[string]string{"v1-default": "", "v1-b": "", "v2-main": "main", "v2-b": "b", "v2-b-wrong-token": "b"} {
		if project[id] != name {
			t.Errorf("%s carries the project %q, want %q", id, project[id], name)
		}
	}
	if n := len(p.Sim.Effects()); n != 5 {
		t.Errorf("%d effects, want 5", n)
	}
}
