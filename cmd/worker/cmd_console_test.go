package main

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/console"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
)

func TestConsoleRefusesToListenBeyondLoopbackWithoutAuth(t *testing.T) {
	_, _, err := runCLI(t, "console", "--addr", "0.0.0.0:0", "--nats-url", "nats://127.0.0.1:1")
	if !errors.As(err, new(usageError)) || !errors.Is(err, console.ErrExposed) {
		t.Fatalf("console on 0.0.0.0 without auth: %v, want a usage error saying it needs auth", err)
	}
}

// The command line's actions land in the same audit log as the console's.
func TestCommandLineActionsAreAudited(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	if _, _, err := runCLI(t, "provision", "--nats-url", url); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"projects", "pause", "shop", "--reason", "provider incident"},
		{"projects", "resume", "shop"},
		{"note", "--chat", "c1", "--content", "later", "--id", "n-1", "--in", "1h"},
		{"cancel", "n-1"},
	} {
		if _, errOut, err := runCLI(t, append(args, "--nats-url", url)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
	}
	_, js := natstest.Connect(t, srv)
	rec, _ := json.Marshal(actions.DeadLetter{Subject: "chat.commands.send.c9", Error: actions.ErrorInfo{Class: contract.ClassPermanent, Message: "no"}})
	if _, err := js.Publish(t.Context(), "chat.dlq.send.c9", rec); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runCLI(t, "dlq", "purge", "--yes", "--nats-url", url); err != nil {
		t.Fatalf("dlq purge: %v\n%s", err, errOut)
	}
	got, err := audit.New(js, audit.Config{}).Recent(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var done []string
	for _, e := range got {
		if e.Via != "cli" || e.Who == "" || e.Count != 1 {
			t.Errorf("entry %+v: want via cli, a who and a count", e)
		}
		done = append(done, e.Action+" "+e.Which)
	}
	if want := []string{"purge (no filter)", "cancel n-1", "resume shop", "pause shop"}; !slices.Equal(done, want) {
		t.Fatalf("audit log %q, want %q", done, want)
	}
}
