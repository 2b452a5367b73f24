package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go"
)

// apiDeadLetter is a command the API refused, with the long message the
// worker writes for it: the request first, the cause last.
func apiDeadLetter(t *testing.T) actions.DeadLetter {
	t.Helper()
	cmd, err := json.Marshal(actions.Command{ID: "cmd-404", Type: contract.TypeSend, ChatID: "missing:ghost", Content: "Is anyone there?"})
	if err != nil {
		t.Fatal(err)
	}
	return actions.DeadLetter{
		Command: cmd, Subject: actions.Subjects{}.Command(contract.TypeSend, "missing:ghost"),
		Error: actions.ErrorInfo{Class: contract.ClassPermanent, APIStatus: 404, APICode: 4004,
			Message: "chat: send POST /chat/v1/chats/missing:ghost/messages: 404 Not Found (code 4004): Error 4004: chat not found"},
		Attempts: 1, Worker: "test/1", DeadAt: time.Now().UTC(),
	}
}

// TestDeadLetterLines: every one-line account of a dead letter (the demo's,
// --wait's and worker status's, dlq ls's row) names the command and keeps
// the cause: the API's status and message.
func TestDeadLetterLines(t *testing.T) {
	dl := apiDeadLetter(t)
	const cause = "404 Not Found (code 4004): Error 4004: chat not found"

	var settled bytes.Buffer
	printSettled(&settled, actions.Settled{DeadLetter: &dl, Subject: "chat.dlq.send.x", Sequence: 7})
	first, _, _ := strings.Cut(settled.String(), "\n")
	for _, want := range []string{"id=cmd-404", "class=permanent", "api_status=404"} {
		if !strings.Contains(first, want) {
			t.Errorf("--wait's dead letter line %q lacks %q", first, want)
		}
	}

	data, err := json.Marshal(dl)
	if err != nil {
		t.Fatal(err)
	}
	demo := describeRecord(&nats.Msg{Subject: "chat.dlq.send.missing:ghost", Data: data})
	for _, want := range []string{"id=cmd-404", "permanent", "HTTP 404", cause} {
		if !strings.Contains(demo, want) {
			t.Errorf("the demo's dead letter line %q lacks %q", demo, want)
		}
	}

	// A malformed command: the id it was published with.
	bad := actions.DeadLetter{Raw: []byte("{oops"), Headers: map[string][]string{nats.MsgIdHdr: {"msg-id-1"}},
		Error: actions.ErrorInfo{Class: contract.ClassInvalid, Message: "not JSON"}}
	if data, err = json.Marshal(bad); err != nil {
		t.Fatal(err)
	}
	if line := describeRecord(&nats.Msg{Subject: "chat.dlq.unknown.x", Data: data}); !strings.Contains(line, "id=msg-id-1") {
		t.Errorf("the demo's line for a malformed command %q lacks its Nats-Msg-Id", line)
	}

	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), actions.Subjects{}.DeadLetter(contract.TypeSend, contract.Token("missing:ghost")), data); err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(dl)
	if _, err := js.Publish(t.Context(), actions.Subjects{}.DeadLetter(contract.TypeSend, contract.Token("missing:ghost")), data); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := userSees(t, "dlq", "ls", "--nats-url", srv.ClientURL(), "--id", "cmd-404")
	if code != 0 || !strings.Contains(stdout, cause) {
		t.Errorf("dlq ls: exit %d, %s%s; want the row to keep %q", code, stdout, stderr, cause)
	}
}
