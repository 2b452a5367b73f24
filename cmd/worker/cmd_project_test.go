package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// projectServer is a provisioned server with no worker: commands stay in
// the stream, and the test plays the worker's part when it needs a record.
func projectServer(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), js
}

// --project NAME publishes on the project's subjects (contract v2); without
// it, the v1 subjects, which every worker release reads.
func TestPublishWithProject(t *testing.T) {
	url, js := projectServer(t)
	commands, err := js.Stream(t.Context(), contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args    []string
		subject string
	}{
		{[]string{"send", "--project", "a", "--chat", "x", "--content", "hi", "--id", "p-1"}, "chat.commands.a.send.x"},
		{[]string{"archive", "--project", "shop-2", "--chat", "jo@x", "--id", "p-2"}, "chat.commands.shop-2.archive.jo%40x"},
		{[]string{"note", "--chat", "x", "--content", "hi", "--id", "p-3"}, "chat.commands.note.x"},
	} {
		if _, _, err := runCLI(t, append(tt.args, "--nats-url", url)...); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		m, err := commands.GetLastMsgForSubject(t.Context(), tt.subject)
		if err != nil {
			t.Fatalf("%v: nothing on %s: %v", tt.args, tt.subject, err)
		}
		if id := m.Header.Get(nats.MsgIdHdr); id != tt.args[len(tt.args)-1] {
			t.Errorf("%s carries %q", tt.subject, id)
		}
	}
	t.Setenv("WORKER_PROJECT", "b")
	if _, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "x", "--content", "hi", "--id", "p-4"); err != nil {
		t.Fatal(err)
	}
	if _, err := commands.GetLastMsgForSubject(t.Context(), "chat.commands.b.send.x"); err != nil {
		t.Errorf("WORKER_PROJECT=b: nothing on chat.commands.b.send.x: %v", err)
	}
	for _, bad := range []string{"Acme", "send", "a.b", "a*"} {
		_, _, err := runCLI(t, "send", "--nats-url", url, "--project", bad, "--chat", "x", "--content", "hi")
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--project") {
			t.Errorf("--project %q: %v, want a usage error naming --project", bad, err)
		}
	}
}

// --wait and worker status find a v2 command's result on its project's
// subject; status for another project does not.
func TestWaitAndStatusWithProject(t *testing.T) {
	url, js := projectServer(t)
	ctx := t.Context()
	type outcome struct {
		out string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		out, _, err := runCLI(t, "send", "--nats-url", url, "--project", "a", "--chat", "x", "--content", "hi", "--id", "w-1", "--wait", "--timeout", "10s", "--json")
		done <- outcome{out, err}
	}()
	// Play the worker: once the command is stored, store its result.
	commands, err := js.Stream(ctx, contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	var cmd *jetstream.RawStreamMsg
	eventuallyOK(t, func() error {
		cmd, err = commands.GetLastMsgForSubject(ctx, "chat.commands.a.send.x")
		return err
	})
	result := contract.Result{ID: "w-1", Type: contract.TypeSend, ChatID: "x", Status: "succeeded", Attempts: 1, APIStatus: 200,
		Response: json.RawMessage(`{}`), CompletedAt: time.Now().UTC(), Project: "a"}
	data, _ := json.Marshal(result)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "chat.results.a.send.x", Data: data},
		jetstream.WithMsgID(actions.RecordID("w-1", cmd.Sequence))); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if o.err != nil || !strings.Contains(o.out, `"project":"a"`) {
			t.Fatalf("send --project a --wait: %q, %v", o.out, o.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("--wait did not return")
	}

	// The command is still in the stream (no worker took it): status
	// finds it waiting, for its project or for all.
	for _, args := range [][]string{{"--project", "a"}, nil} {
		out, _, err := runCLI(t, append([]string{"status", "--nats-url", url, "w-1"}, args...)...)
		if exitCode(err) != exitTimeout || !strings.Contains(out, "waiting") {
			t.Errorf("status w-1 %v: %q, %v; want waiting", args, out, err)
		}
	}
	if _, _, err := runCLI(t, "status", "--nats-url", url, "--project", "b", "w-1"); !errors.Is(err, actions.ErrUnknownCommand) {
		t.Errorf("status w-1 --project b: %v, want unknown", err)
	}
}

// schedules ls shows every schedule with its project, or one project's;
// cancel finds a v2 schedule with or without --project.
func TestSchedulesWithProject(t *testing.T) {
	url, _ := projectServer(t)
	for _, args := range [][]string{
		{"send", "--project", "a", "--chat", "x", "--content", "hi", "--id", "s-a", "--in", "1h"},
		{"note", "--chat", "x", "--content", "hi", "--id", "s-v1", "--in", "1h"},
		{"send", "--project", "b", "--chat", "x", "--content", "hi", "--id", "s-b", "--in", "1h"},
	} {
		if _, _, err := runCLI(t, append(args, "--nats-url", url)...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	out, _, err := runCLI(t, "schedules", "ls", "--nats-url", url)
	if err != nil || !strings.Contains(out, "PROJECT") {
		t.Fatalf("schedules ls: %v\n%s", err, out)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[1]
	}
	if rows["s-a"] != "a" || rows["s-v1"] != "-" || rows["s-b"] != "b" {
		t.Fatalf("schedules ls: projects %v\n%s", rows, out)
	}
	out, _, err = runCLI(t, "schedules", "ls", "--nats-url", url, "--project", "a", "--json")
	var list []actions.Pending
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != "s-a" || list[0].Project != "a" {
		t.Fatalf("schedules ls --project a: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "cancel", "--nats-url", url, "--project", "a", "s-b"); err == nil || !strings.Contains(err.Error(), "no pending schedule") {
		t.Errorf("cancel s-b in project a: %v, want none", err)
	}
	for _, args := range [][]string{{"cancel", "s-a"}, {"cancel", "--project", "b", "s-b"}} {
		if out, _, err := runCLI(t, append(args, "--nats-url", url)...); err != nil || !strings.Contains(out, "cancelled send") {
			t.Errorf("%v: %q, %v", args, out, err)
		}
	}
}

// dlq ls --project lists one project's dead letters; without it, all,
// with a PROJECT column.
func TestDLQWithProject(t *testing.T) {
	url, js := projectServer(t)
	for _, d := range []struct{ id, project string }{{"d-1", ""}, {"d-2", "a"}, {"d-3", "b"}} {
		s := contract.Subjects{}.For(d.project)
		cmd, _ := json.Marshal(contract.Command{ID: d.id, Type: contract.TypeSend, ChatID: "x", Content: "hi"})
		rec, _ := json.Marshal(contract.DeadLetter{Command: cmd, Subject: s.Command(contract.TypeSend, "x"), Project: d.project,
			Error: contract.ErrorInfo{Class: contract.ClassExhausted, Message: "no"}, Attempts: 1, Worker: "test/1", DeadAt: time.Now().UTC()})
		if _, err := js.Publish(t.Context(), s.DeadLetter(contract.TypeSend, "x"), rec); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runDLQTest(t, "", "ls", "--nats-url", url, "--project", "a", "--json")
	var got []dlq.Entry
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 || got[0].ID != "d-2" || got[0].Project != "a" {
		t.Fatalf("dlq ls --project a: %v\n%s", err, out)
	}
	out, _, err = runDLQTest(t, "", "ls", "--nats-url", url, "--chat", "x")
	if err != nil || !strings.Contains(out, "PROJECT") || strings.Count(out, "\n") != 4 {
		t.Fatalf("dlq ls --chat x: %v\n%s", err, out)
	}
	if _, _, err := runDLQTest(t, "", "show", "--nats-url", url, "--project", "b", "d-2"); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("dlq show --project b d-2: %v, want not found", err)
	}
	if out, _, err := runDLQTest(t, "", "show", "--nats-url", url, "d-3"); err != nil || !strings.Contains(out, "Project:") {
		t.Errorf("dlq show d-3: %v\n%s", err, out)
	}
}
