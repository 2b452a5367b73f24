package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/project"
	"go.uber.org/zap"
)

// Pause, list and resume from the command line, against a bucket that
// `worker provision` made.
func TestProjectsCommandLine(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	if _, _, err := runCLI(t, "projects", "ls", "--nats-url", url); !errors.Is(err, project.ErrNoBucket) {
		t.Fatalf("projects ls before provision: %v, want the hint to provision", err)
	}
	if _, _, err := runCLI(t, "provision", "--nats-url", url); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(t, "projects", "ls", "--nats-url", url)
	if err != nil || !strings.Contains(errOut, "every project is active") {
		t.Fatalf("projects ls with nothing paused: %q, %v", errOut, err)
	}

	out, _, err := runCLI(t, "projects", "pause", "shop", "--nats-url", url, "--reason", "provider incident", "--by", "alice")
	if err != nil || !strings.Contains(out, "shop: paused by an operator") || !strings.Contains(out, "provider incident") {
		t.Fatalf("pause: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "ls", "--nats-url", url)
	if err != nil || !strings.Contains(out, "shop") || !strings.Contains(out, "paused-operator") || !strings.Contains(out, "alice") {
		t.Fatalf("projects ls: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "ls", "--nats-url", url, "--json")
	var list []project.State
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Operator.Reason != "provider incident" {
		t.Fatalf("projects ls --json: %q, %v", out, err)
	}

	// Defaults: set, changed one at a time, listed, cleared.
	out, _, err = runCLI(t, "projects", "set", "default", "--nats-url", url, "--quiet-hours", "21:00-08:00", "--quiet-tz", "Europe/London", "--by", "bob")
	if err != nil || strings.TrimSpace(out) != "default: quiet 21:00-08:00 Europe/London" {
		t.Fatalf("set --quiet-hours: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "set", "default", "--nats-url", url, "--frequency-cap", "3/24h")
	if err != nil || strings.TrimSpace(out) != "default: quiet 21:00-08:00 Europe/London, cap 3/24h" {
		t.Fatalf("set --frequency-cap: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "ls", "--nats-url", url)
	if err != nil || !strings.Contains(out, "paused-operator") || !regexp.MustCompile(`default +21:00-08:00 +Europe/London +3/24h`).MatchString(out) {
		t.Fatalf("projects ls with defaults: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "ls", "--nats-url", url, "--json")
	var rows []struct {
		project.State
		Settings *project.Settings `json:"settings"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 || rows[0].Project != "default" || rows[0].Settings == nil ||
		*rows[0].Settings.FrequencyCap != (contract.FrequencyCap{Max: 3, Per: "24h"}) || rows[1].Project != "shop" || rows[1].Operator == nil {
		t.Fatalf("projects ls --json with defaults: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "set", "default", "--nats-url", url, "--quiet-hours", "none")
	if err != nil || strings.TrimSpace(out) != "default: cap 3/24h" {
		t.Fatalf("set --quiet-hours none: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "projects", "set", "default", "--nats-url", url, "--clear")
	if err != nil || strings.TrimSpace(out) != "default: no defaults" {
		t.Fatalf("set --clear: %q, %v", out, err)
	}

	out, _, err = runCLI(t, "projects", "resume", "shop", "--nats-url", url)
	if err != nil || strings.TrimSpace(out) != "shop: active" {
		t.Fatalf("resume: %q, %v", out, err)
	}
	_, errOut, err = runCLI(t, "projects", "resume", "shop", "--nats-url", url)
	if err != nil || !strings.Contains(errOut, "was not paused") {
		t.Fatalf("resume again: %q, %v", errOut, err)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		problem string
	}{
		{"no verb", []string{"projects"}, "want ls, pause, resume or set"},
		{"unknown verb", []string{"projects", "stop"}, "unknown"},
		{"pause without reason", []string{"projects", "pause", "shop", "--nats-url", url}, "--reason is required"},
		{"pause without name", []string{"projects", "pause", "--reason", "x", "--nats-url", url}, "one project"},
		{"bad name", []string{"projects", "pause", "a.b", "--reason", "x", "--nats-url", url}, "project name"},
		{"set nothing", []string{"projects", "set", "shop", "--nats-url", url}, "nothing to set"},
		{"set a zone alone", []string{"projects", "set", "shop", "--quiet-tz", "UTC", "--nats-url", url}, "--quiet-tz goes with --quiet-hours"},
		{"set a bad window", []string{"projects", "set", "shop", "--quiet-hours", "21-8", "--quiet-tz", "UTC", "--nats-url", url}, "HH:MM"},
		{"set a bad cap", []string{"projects", "set", "shop", "--frequency-cap", "3/forever", "--nats-url", url}, "frequency"},
		{"set a bad name", []string{"projects", "set", "a.b", "--frequency-cap", "3/1h", "--nats-url", url}, "project name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, tc.args...)
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("err = %v, want a usage error naming %q", err, tc.problem)
			}
		})
	}
}

// TestStatusSaysWhyACommandWaits: a command of a paused project is waiting,
// and worker status and --wait say why; status exits 4 (not settled), as
// --wait does at its timeout.
func TestStatusSaysWhyACommandWaits(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	if _, _, err := runCLI(t, "provision", "--nats-url", url); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "projects", "pause", "default", "--nats-url", url, "--reason", "provider incident", "--by", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "hi", "--id", "held-1"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "status", "held-1", "--nats-url", url)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != exitTimeout {
		t.Fatalf("status of a waiting command: %v, want exit %d", err, exitTimeout)
	}
	if !strings.Contains(out, "it waits because its project default is paused by an operator") || !strings.Contains(out, "provider incident") {
		t.Fatalf("status does not say why the command waits:\n%s", out)
	}
	_, _, err = runCLI(t, "note", "--nats-url", url, "--chat", "c1", "--content", "hi", "--id", "held-2", "--wait", "--timeout", "1s")
	if !errors.As(err, &exit) || exit.code != exitTimeout || !strings.Contains(err.Error(), "paused by an operator") {
		t.Fatalf("--wait on a paused project: %v, want exit %d saying why", err, exitTimeout)
	}
}

// projects ls lists every project the live replicas serve, with what they
// spent of its budget in the last minute, paused or not.
func TestProjectsListShowsBudgetUse(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	_, js := natstest.Connect(t, srv)
	if _, _, err := runCLI(t, "provision", "--nats-url", url); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]map[string]chat.Budget{
		"pod-a": {"default": {Known: true, Limit: 600, Remaining: 100, Used: 200}, "shop": {Used: 3}},
		"pod-b": {"default": {Known: true, Limit: 600, Remaining: 90, Used: 250}},
	} {
		f, err := fleet.Join(t.Context(), js, fleet.Config{Budgets: func() map[string]chat.Budget { return b }}, fleet.Member{Name: name}, nil, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Leave(context.Background()) })
	}
	for _, chatID := range []string{"c1", "c2"} {
		if _, err := actions.Publish(t.Context(), js, actions.Note{ID: "n-" + chatID, ChatID: chatID, Content: "hi"}, actions.Subjects{}.For("shop")); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runCLI(t, "projects", "ls", "--nats-url", url)
	if err != nil || !regexp.MustCompile(`(?m)^default +active .* 0 +450/600 \(75%\)$`).MatchString(out) || !regexp.MustCompile(`(?m)^shop +active .* 2 +3$`).MatchString(out) {
		t.Fatalf("projects ls: %q, %v; want default at 450/600 (75%%) with none waiting and shop at 3 with 2 waiting", out, err)
	}
	out, _, err = runCLI(t, "projects", "ls", "--nats-url", url, "--json")
	var rows []projectRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 || rows[0].Budget == nil || rows[0].Budget.Used != 450 || rows[1].Waiting != 2 {
		t.Fatalf("projects ls --json: %q, %v", out, err)
	}
}
