package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"go.uber.org/zap"
)

// A dead letter of a project (contract v2) shows its project in the list
// and on its page.
func TestDeadLettersShowTheirProject(t *testing.T) {
	f := newFixture(t, nil)
	s := actions.Subjects{}.For("acme")
	cmd, _ := json.Marshal(actions.Command{ID: "v2-1", Type: contract.TypeSend, ChatID: "chat-v2", Content: "hi"})
	rec, _ := json.Marshal(actions.DeadLetter{Command: cmd, Subject: s.Command(contract.TypeSend, "chat-v2"), Project: "acme",
		Error: actions.ErrorInfo{Class: contract.ClassExhausted, Message: "no"}, Attempts: 1, Worker: "test/1", DeadAt: time.Now().UTC()})
	ack, err := f.js.Publish(t.Context(), s.DeadLetter(contract.TypeSend, "chat-v2"), rec)
	if err != nil {
		t.Fatal(err)
	}
	if body := f.get("/dlq"); !strings.Contains(body, "<th>Project</th>") || !strings.Contains(body, "<td>acme</td>") {
		t.Errorf("/dlq does not show the project:\n%s", body)
	}
	if body := f.get(fmt.Sprintf("/dlq/%d", ack.Sequence)); !strings.Contains(body, "<dd>acme</dd>") {
		t.Errorf("the dead letter's page does not show its project:\n%s", body)
	}
}

// The overview lists every project a replica serves, active or paused,
// with the commands waiting on its subjects and the budget the replicas
// spent in the last minute.
func TestOverviewListsProjects(t *testing.T) {
	f := newFixture(t, nil)
	f2, err := fleet.Join(t.Context(), f.js, fleet.Config{Budgets: func() map[string]chat.Budget {
		return map[string]chat.Budget{"acme": {Known: true, Limit: 600, Remaining: 400, Used: 150}, "quiet": {}}
	}}, fleet.Member{Name: "pod-a/1"}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f2.Leave(context.Background()) })
	s := actions.Subjects{}.For("acme")
	for _, chatID := range []string{"c1", "c2"} {
		if _, err := actions.Publish(t.Context(), f.js, actions.Note{ID: "n-" + chatID, ChatID: chatID, Content: "hi"}, s); err != nil {
			t.Fatal(err)
		}
	}
	body := f.get("/")
	row := regexp.MustCompile(`(?s)<td class="mono"><a href="/projects">acme</a></td><td class="state">active</td>.*?<td class="num">2</td><td class="num">150/600 \(25%\)</td>`)
	if !row.MatchString(body) || !strings.Contains(body, `<a href="/projects">quiet</a>`) {
		t.Errorf("the overview does not list acme with 2 waiting and 150/600 of its budget, and quiet:\n%s", body)
	}
}
