package consumer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/workertest"
)

// publishV2 publishes n notes of project on v2 subjects, asynchronously on
// a connection of its own, over chats chats named prefix<i%chats>, and
// waits for the stream's acknowledgements.
func publishV2(t *testing.T, p *pipeline, project, prefix string, n, chats int) {
	t.Helper()
	_, js := natstest.Connect(t, p.Server)
	s := contract.Subjects{}.For(project)
	for i := range n {
		chatID := fmt.Sprint(prefix, i%chats)
		body, err := json.Marshal(map[string]string{"id": fmt.Sprint(prefix, "-", i), "type": "note", "chat_id": chatID, "content": "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(s.Command(contract.TypeNote, chatID), body); err != nil {
			t.Fatal(err)
		}
		if i%2000 == 1999 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		t.Fatalf("publishing %d commands of %s took over two minutes", n, project)
	}
}

// TestCampaignDoesNotStarveAnotherProject is issue 28's campaign: project
// A publishes 100,000 notes at once on its v2 subjects, then project B 10.
// Both budgets are 25 calls a second, so A's backlog outlasts the test; its
// commands handed back to wait for their budget stay pending for A's
// consumer. B's commands are done within seconds of their publish: B has a
// consumer of its own, with its own MaxAckPending. On one consumer shared by
// both, A's waiting commands fill MaxAckPending and none of B's is
// delivered for as long as A's backlog lasts.
func TestCampaignDoesNotStarveAnotherProject(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 100,000 commands")
	}
	const nA, nB = 100000, 10
	p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kb": {"sb"}}), workertest.WithRateLimit(25, time.Second))
	client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
	if err != nil {
		t.Fatal(err)
	}
	exec := &execute.Executor{Client: client, SiteToken: "sa", Default: "campaign", Projects: map[string]chat.Credentials{"b": {APIKey: "kb", SiteToken: "sb"}}}
	cfg := p.Config
	cfg.Projects = exec
	p.startWorker(exec, cfg)

	publishV2(t, p, "campaign", "a-", nA, 1000)
	// A's deliveries are under way: a pending limit is full of A's.
	filling := time.Now()
	workertest.Eventually(t, 3*time.Minute, func() bool {
		s, err := p.JS.Stream(t.Context(), "CHAT_COMMANDS")
		if err != nil {
			return false
		}
		pending := 0
		for info := range s.ListConsumers(t.Context()).Info() {
			pending += info.NumAckPending
		}
		return pending >= cfg.Topology.WithDefaults().MaxAckPending
	}, "project A's commands did not fill a consumer's pending limit")
	t.Logf("A's commands filled a pending limit in %v", time.Since(filling).Round(time.Millisecond))

	start := time.Now()
	publishV2(t, p, "b", "b-", nB, nB)
	aDone := waitProjectB(t, p, nB)
	took := time.Since(start)
	t.Logf("project B's %d commands done %v after their publish, with %d of A's %d done", nB, took.Round(time.Millisecond), aDone, nA)
	// B's own budget takes 0.4 s for 10 calls; the bound leaves room for a
	// slow machine, far below A's backlog (over an hour at A's budget).
	if took > 15*time.Second {
		t.Errorf("B's commands took %v", took)
	}
}

// waitProjectB waits until the API has the effects of all nB commands of
// project B (chats "b-..."), and returns how many of project A's it had
// by then.
func waitProjectB(t *testing.T, p *pipeline, nB int) (aDone int) {
	t.Helper()
	var bDone int
	workertest.Eventually(t, 2*time.Minute, func() bool {
		bDone, aDone = 0, 0
		for _, e := range p.Sim.Effects() {
			if strings.HasPrefix(e.ChatID, "b-") {
				bDone++
			} else {
				aDone++
			}
		}
		return bDone == nB
	}, "project B's commands were not all done (%d of %d)", &bDone, nB)
	return aDone
}
