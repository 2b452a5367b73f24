package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/schematest"
)

// exitCode is the status main exits with for err.
func exitCode(err error) int {
	var e exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &e):
		return e.code
	case errors.As(err, new(usageError)):
		return 2
	}
	return 1
}

// TestPublishWaitAndStatus runs worker run against NATS and the simulator,
// then send, note and archive with --wait, ids published again, and worker
// status, checking what each prints and its exit status.
func TestPublishWaitAndStatus(t *testing.T) {
	srv := natstest.RunServer(t)
	hs := httptest.NewServer(chatsim.New(chatsim.Config{}))
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "test-key")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	url := srv.ClientURL()

	// Before any worker runs: the wait times out, and the command waits.
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"provision", "--nats-url", url}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), []string{"archive", "--nats-url", url, "--chat", "c0", "--id", "early", "--wait", "--timeout", "300ms"}, nil, &out, &errOut)
	if exitCode(err) != exitTimeout || !strings.Contains(err.Error(), "worker status early") {
		t.Errorf("--wait with no worker: exit %d, %v; want %d naming worker status", exitCode(err), err, exitTimeout)
	}
	out.Reset()
	// status exits as --wait does: 4 while the command is not settled.
	if err := run(t.Context(), []string{"status", "--nats-url", url, "early"}, nil, &out, &errOut); exitCode(err) != exitTimeout || !strings.Contains(out.String(), "waiting") {
		t.Errorf("status before the worker: exit %d (%v), %q; want waiting, exit %d", exitCode(err), err, out.String(), exitTimeout)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", url, "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", ""},
			nil, &bytes.Buffer{}, &syncWriter{w: &bytes.Buffer{}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("run did not return after shutdown")
		}
	})

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // parts of what is printed
		stderr []string
		schema *schematest.Schema // with --json: stdout validates
	}{
		{"send waits for its result", []string{"send", "--chat", "email:jo@example.com", "--content", "Hi Jo", "--id", "cli-1", "--wait"},
			0, []string{"succeeded", "id=cli-1", "api_status=200"}, nil, nil},
		{"the same again: already published, the same result", []string{"send", "--chat", "email:jo@example.com", "--content", "Hi Jo", "--id", "cli-1", "--wait", "--json"},
			0, []string{`"id":"cli-1"`, `"status":"succeeded"`}, []string{"already published"}, schematest.Result(t)},
		{"the same again without --wait", []string{"send", "--chat", "email:jo@example.com", "--content", "Hi Jo", "--id", "cli-1"},
			0, []string{"cli-1"}, []string{"already published"}, nil},
		{"a different body under the id", []string{"send", "--chat", "email:jo@example.com", "--content", "Bye Jo", "--id", "cli-1"},
			1, nil, nil, nil},
		{"a different body under the id, waiting", []string{"note", "--chat", "email:jo@example.com", "--content", "Hi Jo", "--id", "cli-1", "--wait"},
			1, nil, nil, nil},
		{"dead letter: exit 3", []string{"send", "--chat", "missing:1", "--content", "Hi", "--id", "cli-2", "--wait"},
			exitDeadLetter, []string{"dead letter", "class=permanent", "chat not found"}, nil, nil},
		{"dead letter as JSON", []string{"archive", "--chat", "missing:2", "--id", "cli-3", "--wait", "--json"},
			exitDeadLetter, []string{`"class":"permanent"`}, nil, schematest.DeadLetter(t)},
		{"note", []string{"note", "--chat", "c9", "--content", "private", "--wait", "--json"},
			0, []string{`"type":"note"`}, nil, schematest.Result(t)},
		{"status of a success", []string{"status", "cli-1"}, 0, []string{"cli-1  succeeded", "id=cli-1"}, nil, nil},
		{"status of a dead letter", []string{"status", "--json", "cli-2"}, exitDeadLetter, []string{`"state":"dead-lettered"`, `"class":"permanent"`}, nil, nil},
		{"status of what waited before the worker", []string{"status", "early"}, 0, []string{"early  succeeded"}, nil, nil},
		{"status of an unknown id", []string{"status", "nobody"}, 1, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{tt.args[0], "--nats-url", url}, tt.args[1:]...)
			var err error
			deadline := time.Now().Add(time.Minute)
			for {
				stdout.Reset()
				stderr.Reset()
				err = run(t.Context(), args, nil, &stdout, &stderr)
				// early may still be on its way through the worker.
				if tt.name != "status of what waited before the worker" || strings.Contains(stdout.String(), "succeeded") || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit %d (%v), want %d\nstdout: %s\nstderr: %s", got, err, tt.code, stdout.String(), stderr.String())
			}
			if tt.code == 1 && !strings.Contains(err.Error(), `"cli-1"`) && !strings.Contains(err.Error(), "nobody") {
				t.Errorf("error %q does not name the id", err)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout %q lacks %q", stdout.String(), s)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q lacks %q", stderr.String(), s)
				}
			}
			if tt.schema != nil {
				tt.schema.Valid(t, bytes.TrimSpace(stdout.Bytes()))
			}
			if tt.args[0] == "status" && strings.Contains(strings.Join(tt.args, " "), "--json") && !json.Valid(stdout.Bytes()) {
				t.Errorf("status --json printed %q", stdout.String())
			}
		})
	}
}

// TestPublishHelp: each publishing subcommand lists only the flags it uses,
// and -h is not an error (for demo too).
func TestPublishHelp(t *testing.T) {
	tests := []struct {
		cmd         string
		has, hasNot []string
	}{
		{"send", []string{"-chat", "-content", "-from", "-wait", "-timeout", "-json", "-nats-url"}, []string{"-replicas", "-dlq-max-age", "-concurrency"}},
		{"note", []string{"-chat", "-content", "-wait"}, []string{"-from", "-replicas", "-dlq-max-bytes"}},
		{"archive", []string{"-chat", "-id", "-wait"}, []string{"-content", "-from", "-replicas"}},
		{"status", []string{"-json", "-nats-url"}, []string{"-replicas", "-dlq-max-msgs"}},
		{"demo", []string{"-timeout"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{tt.cmd, "-h"}, nil, &stdout, &stderr)
			if exitCode(err) != 0 {
				t.Fatalf("%s -h: exit %d (%v)", tt.cmd, exitCode(err), err)
			}
			help := stderr.String()
			for _, f := range tt.has {
				if !strings.Contains(help, "  "+f+" ") && !strings.Contains(help, "  "+f+"\n") {
					t.Errorf("%s -h lacks %s:\n%s", tt.cmd, f, help)
				}
			}
			for _, f := range tt.hasNot {
				if strings.Contains(help, "  "+f) {
					t.Errorf("%s -h lists %s, which it does not use", tt.cmd, f)
				}
			}
		})
	}
}

// TestPublishVerbsFollowTheTable: every command type with a verb in
// contract.Specs is a subcommand listed in `worker help`, whose -h shows the
// flags the type takes, and no other subcommand shadows it.
func TestPublishVerbsFollowTheTable(t *testing.T) {
	for _, s := range contract.Specs() {
		if s.Verb == "" {
			continue
		}
		t.Run(s.Verb, func(t *testing.T) {
			if !strings.Contains(usage(), "\n  "+s.Verb+" ") {
				t.Errorf("worker help does not list %s", s.Verb)
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{s.Verb, "-h"}, nil, &stdout, &stderr)
			if exitCode(err) != 0 {
				t.Fatalf("%s -h: exit %d (%v)", s.Verb, exitCode(err), err)
			}
			help := stderr.String()
			if !strings.Contains(help, publishUsage(s)) {
				t.Errorf("%s -h is not the publishing help of %s:\n%s", s.Verb, s.Type, help)
			}
			for _, f := range []struct {
				flag  string
				takes bool
			}{{"-content", s.Content}, {"-from", s.From}} {
				if got := strings.Contains(help, "  "+f.flag+" "); got != f.takes {
					t.Errorf("%s -h lists %s: %v, want %v", s.Verb, f.flag, got, f.takes)
				}
			}
		})
	}
}
