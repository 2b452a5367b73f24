package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// dlqFixture provisions the streams and stores dead letters directly.
func dlqFixture(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, d := range []struct {
		id, typ, chat string
		class         contract.Class
	}{
		{"a-1", "send", "chat-a", contract.ClassExhausted},
		{"a-2", "note", "chat-a", contract.ClassExhausted},
		{"b-1", "send", "missing:b", contract.ClassPermanent},
		{"c-1", "archive", "chat-c", contract.ClassInvalid},
	} {
		cmd, _ := json.Marshal(contract.Command{ID: d.id, Type: contract.Type(d.typ), ChatID: d.chat, Content: "hi"})
		rec, _ := json.Marshal(contract.DeadLetter{
			Command: cmd, Subject: contract.Subjects{}.Command(contract.Type(d.typ), d.chat),
			Error:    contract.ErrorInfo{Class: d.class, Message: "the API said no"},
			Attempts: 3, Worker: "test/1", DeadAt: now,
		})
		if _, err := js.Publish(t.Context(), contract.Subjects{}.DeadLetter(contract.Type(d.typ), contract.Token(d.chat)), rec); err != nil {
			t.Fatal(err)
		}
	}
	return srv.ClientURL(), js
}

func runDLQTest(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	err := run(ctx, append([]string{"dlq"}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestDLQCommandLine(t *testing.T) {
	url, js := dlqFixture(t)
	t.Run("ls", func(t *testing.T) {
		out, _, err := runDLQTest(t, "", "ls", "--nats-url", url, "--class", "exhausted")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "CLASS") || !strings.Contains(out, "a-1") || !strings.Contains(out, "a-2") || strings.Contains(out, "b-1") {
			t.Errorf("table:\n%s", out)
		}
	})
	t.Run("ls json", func(t *testing.T) {
		out, _, err := runDLQTest(t, "", "ls", "--nats-url", url, "--json", "--type", "send")
		if err != nil {
			t.Fatal(err)
		}
		var got []dlq.Entry
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[0].ID != "a-1" || got[1].Letter.Error.Class != "permanent" {
			t.Errorf("json %v: %s", err, out)
		}
	})
	t.Run("ls empty", func(t *testing.T) {
		out, errOut, err := runDLQTest(t, "", "ls", "--nats-url", url, "--chat", "nobody")
		if err != nil || out != "" || !strings.Contains(errOut, "no dead letters match --chat \"nobody\"") {
			t.Errorf("err %v, stdout %q, stderr %q", err, out, errOut)
		}
	})
	t.Run("show by id and seq", func(t *testing.T) {
		out, _, err := runDLQTest(t, "", "show", "b-1", "--nats-url", url)
		if err != nil || !strings.Contains(out, "permanent") || !strings.Contains(out, "missing:b") || !strings.Contains(out, `"id": "b-1"`) {
			t.Errorf("show b-1: %v\n%s", err, out)
		}
		out, _, err = runDLQTest(t, "", "show", "--nats-url", url, "1")
		if err != nil || !strings.Contains(out, "a-1") {
			t.Errorf("show 1: %v\n%s", err, out)
		}
		_, _, err = runDLQTest(t, "", "show", "--nats-url", url, "zzz")
		if !errors.Is(err, dlq.ErrNotFound) {
			t.Errorf("show zzz: %v", err)
		}
	})
	t.Run("bad filter", func(t *testing.T) {
		_, _, err := runDLQTest(t, "", "ls", "--nats-url", url, "--since", "last tuesday")
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), `--since "last tuesday": want a time`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("replay dry run, then for real", func(t *testing.T) {
		out, _, err := runDLQTest(t, "", "replay", "--nats-url", url, "--type", "archive", "--dry-run")
		if err != nil || !strings.Contains(out, "skipped") || !strings.Contains(out, "--include-invalid") {
			t.Errorf("dry run: %v\n%s", err, out)
		}
		out, _, err = runDLQTest(t, "", "replay", "--nats-url", url, "--id", "a-1", "--rate", "0")
		if err != nil || !strings.Contains(out, "replayed 1 of 1") {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		st, err := js.Stream(t.Context(), "CHAT_COMMANDS")
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(t.Context(), "chat.commands.send.chat-a")
		if err != nil || m.Header.Get("Nats-Msg-Id") != "a-1:replay:1" {
			t.Errorf("republished: %v %v", m, err)
		}
		_, _, err = runDLQTest(t, "", "replay", "--nats-url", url, "--id", "a-1")
		if !errors.Is(err, dlq.ErrEmpty) {
			t.Errorf("replay again: %v, want ErrEmpty", err)
		}
	})
	t.Run("purge asks", func(t *testing.T) {
		out, _, err := runDLQTest(t, "n\n", "purge", "--nats-url", url, "--class", "permanent")
		if err != nil || !strings.Contains(out, "Delete 1 dead letters") || !strings.Contains(out, "nothing deleted") {
			t.Errorf("purge, no: %v\n%s", err, out)
		}
		out, _, err = runDLQTest(t, "y\n", "purge", "--nats-url", url, "--class", "permanent")
		if err != nil || !strings.Contains(out, "deleted 1 dead letters") {
			t.Errorf("purge, yes: %v\n%s", err, out)
		}
		out, _, err = runDLQTest(t, "", "purge", "--nats-url", url, "--yes")
		if err != nil || !strings.Contains(out, "deleted 2 dead letters") {
			t.Errorf("purge --yes: %v\n%s", err, out)
		}
	})
}

func TestDLQErrors(t *testing.T) {
	srv := natstest.RunServer(t)
	_, _, err := runDLQTest(t, "", "ls", "--nats-url", srv.ClientURL())
	if !errors.Is(err, dlq.ErrNoStream) || !strings.Contains(err.Error(), "CHAT_DLQ") {
		t.Errorf("no stream: %v", err)
	}
	_, _, err = runDLQTest(t, "", "ls", "--nats-url", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Errorf("no NATS: %v", err)
	}
	_, _, err = runDLQTest(t, "", "frobnicate")
	if !errors.As(err, new(usageError)) {
		t.Errorf("unknown subcommand: %v", err)
	}
	_, _, err = runDLQTest(t, "", "ls", "--class", "bogus")
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--class \"bogus\"") {
		t.Errorf("bad class: %v", err)
	}
}
