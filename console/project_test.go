package console_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
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
