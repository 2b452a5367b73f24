package consumer_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/workertest"
)

// TestProjectAddedAndRemovedWhileRunning: a project added to the
// configuration while the worker runs has its commands served within
// seconds, those that waited in the stream first; once removed, its
// commands wait in the stream, undelivered, until it is added again.
func TestProjectAddedAndRemovedWhileRunning(t *testing.T) {
	p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kc": {"sc"}}))
	keys, publishTo := startProjectsWorker(t, p)
	publish := func(id string) { publishTo("sc", id) }
	configure := func(on bool) {
		keys.mu.Lock()
		defer keys.mu.Unlock()
		if on {
			keys.projects["sc"] = chat.Credentials{APIKey: "kc", SiteToken: "sc"}
		} else {
			delete(keys.projects, "sc")
		}
	}
	done := func(n int) {
		t.Helper()
		var got int
		workertest.Eventually(t, 20*time.Second, func() bool { got = len(p.Sim.Effects()); return got == n }, "%d effects, want %d", &got, n)
	}

	// The worker is under way: the default project's commands are served,
	// and sc's wait.
	publish("before")
	publishTo(contract.DefaultProject, "default")
	done(1)
	configure(true)
	start := time.Now()
	done(2)
	t.Logf("a command of a project added while running was done %v after it was added", time.Since(start).Round(time.Millisecond))
	publish("while")
	done(3)

	configure(false)
	// Its loop stops: no pull request waits on its durable, and a command
	// published then stays there, undelivered.
	cons, err := p.JS.Consumer(t.Context(), "CHAT_COMMANDS", "chat-worker-p-sc")
	if err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 20*time.Second, func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumWaiting == 0
	}, "the removed project's durable still has pull requests waiting")
	publish("after")
	workertest.Eventually(t, 20*time.Second, func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumPending == 1 && info.NumAckPending == 0
	}, "the removed project's command is not waiting undelivered")
	if n := len(p.Sim.Effects()); n != 3 {
		t.Errorf("%d effects after the project was removed, want 3", n)
	}
	if n := p.Count("CHAT_DLQ"); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	configure(true)
	done(4)
}

// startProjectsWorker starts p's worker with the default project's
// credentials ka/sa and no other project yet (keys.projects is the
// configuration, changed under keys.mu), and returns how to publish a v2
// note of a project with an id that is also its chat.
func startProjectsWorker(t *testing.T, p *pipeline) (keys *keySet, publish func(project, id string)) {
	t.Helper()
	client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
	if err != nil {
		t.Fatal(err)
	}
	keys = &keySet{def: chat.Credentials{APIKey: "ka", SiteToken: "sa"}, projects: map[string]chat.Credentials{}}
	exec := &execute.Executor{Client: client, SiteToken: "sa", Keys: keys}
	cfg := p.Config
	cfg.Projects = exec
	p.startWorker(exec, cfg)
	return keys, func(project, id string) {
		body, err := json.Marshal(map[string]string{"id": id, "type": "note", "chat_id": id, "content": "x"})
		if err != nil {
			t.Fatal(err)
		}
		p.PublishRaw(contract.Subjects{}.For(project).Command(contract.TypeNote, id), id, body)
	}
}
