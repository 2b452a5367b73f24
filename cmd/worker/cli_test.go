package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

// runCLI runs the command line and returns what the user sees: stdout, and
// stderr as main prints it (the command's own lines, then the error with
// its hint), with the exit status.
func userSees(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(""), &out, &errOut)
	code = exitStatus(err, &errOut)
	return out.String(), errOut.String(), code
}

// TestFlagsAfterArguments: every subcommand that takes positional
// arguments takes its flags after them too, by one mechanism.
func TestFlagsAfterArguments(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	if _, stderr, code := userSees(t, "provision", "--nats-url", url); code != 0 {
		t.Fatalf("provision: %s", stderr)
	}
	for _, id := range []string{"some-id", "-dash-id"} {
		if _, stderr, code := userSees(t, "archive", "--chat", "c", "--id", id, "--nats-url", url); code != 0 {
			t.Fatalf("archive: %s", stderr)
		}
	}
	tests := []struct {
		name string
		args []string
		out  string // part of stdout
	}{
		{"status", []string{"status", "some-id", "--json", "--nats-url", url}, `"state"`},
		{"status, flags on both sides", []string{"status", "--nats-url", url, "some-id", "--json"}, `"state"`},
		{"status, -- ends the flags", []string{"status", "--nats-url", url, "--json", "--", "-dash-id"}, `"-dash-id"`},
		{"dlq show", []string{"dlq", "show", "nobody-knows", "--json", "--nats-url", url}, ""},
		{"cancel", []string{"cancel", "nobody-knows", "--nats-url", url}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := userSees(t, tt.args...)
			if code == 2 {
				t.Fatalf("%v: exit 2, a usage error:\n%s", tt.args, stderr)
			}
			if !strings.Contains(stdout, tt.out) {
				t.Errorf("%v printed %q, want %q in it (stderr %q)", tt.args, stdout, tt.out, stderr)
			}
		})
	}
}

// TestOneDurationSyntax: every duration flag and variable takes days, and
// a bad duration is one line, not a usage dump.
func TestOneDurationSyntax(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	url := srv.ClientURL()
	t.Setenv("WORKER_RESULTS_MAX_AGE", "10d")
	if _, stderr, code := userSees(t, "provision", "--nats-url", url, "--commands-max-age", "7d", "--dlq-max-age", "1d12h"); code != 0 {
		t.Fatalf("provision with days: exit %d\n%s", code, stderr)
	}
	for stream, want := range map[string]time.Duration{"CHAT_RESULTS": 240 * time.Hour, "CHAT_COMMANDS": 168 * time.Hour, "CHAT_DLQ": 36 * time.Hour} {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != want {
			t.Errorf("%s MaxAge %v, want %v", stream, got, want)
		}
	}

	before := time.Now()
	stdout, stderr, code := userSees(t, "send", "--nats-url", url, "--chat", "c", "--content", "later", "--in", "10d", "--not-after", "1d")
	if code != 0 {
		t.Fatalf("send --in 10d: exit %d\n%s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	stdout, _, _ = userSees(t, "status", id, "--json", "--nats-url", url)
	var st struct {
		Schedule struct {
			At time.Time `json:"at"`
		} `json:"schedule"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, stdout)
	}
	if at := st.Schedule.At; at.Before(before.Add(240*time.Hour)) || at.After(time.Now().Add(240*time.Hour+time.Second)) {
		t.Errorf("scheduled at %v, want 10 days from now", at)
	}

	for _, args := range [][]string{
		{"send", "--chat", "c", "--content", "x", "--in", "10x"},
		{"status", "id", "--timeout", "30"},
		{"dlq", "ls", "--since", "yesterday"},
	} {
		_, stderr, code := userSees(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 2 || !strings.Contains(lines[0], "want") || strings.Contains(stderr, "usage:") {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2, one line saying what is wanted and a hint", args, code, stderr)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30s", 30 * time.Second, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"7d", 168 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"-2d", -48 * time.Hour, ""},
		{"0", 0, ""},
		{"30", 0, "no unit: want a duration such as 30s"},
		{"2w", 0, "want a duration"},
		{"d", 0, "want a duration"},
		{"", 0, "empty"},
	} {
		got, err := parseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseDuration(%q) = %v, %v; want an error saying %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if tt.want > 0 {
			if back, err := parseDuration(formatDuration(tt.want)); err != nil || back != tt.want {
				t.Errorf("formatDuration(%v) = %q, which reads back as %v, %v", tt.want, formatDuration(tt.want), back, err)
			}
		}
	}
}

// TestMistakesAreOneLineWithAHint: a mistake in the command line is said in
// one line (one per problem, all of them at once), followed by the help
// that answers it, never the full usage.
func TestMistakesAreOneLineWithAHint(t *testing.T) {
	t.Setenv("GOSQUARED_API_KEY", "")
	t.Setenv("GOSQUARED_API_KEY_FILE", "")
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		lines []string // each line of stderr contains these, in order
	}{
		{"unknown flag", nil, []string{"send", "--chatt", "x"},
			[]string{"unknown flag --chatt (did you mean --chat?)", "`worker send -h`"}},
		{"unknown flag of a nested command", nil, []string{"dlq", "ls", "--clas", "x"},
			[]string{"unknown flag --clas (did you mean --class?)", "`worker dlq ls -h`"}},
		{"flag without its value", nil, []string{"status", "x", "--timeout"},
			[]string{"--timeout needs a value", "`worker status -h`"}},
		{"mistyped command", nil, []string{"sned"},
			[]string{`unknown command "sned" (did you mean send?)`, "`worker help`"}},
		{"mistyped dlq command", nil, []string{"dlq", "replya"},
			[]string{"(did you mean replay?)", "`worker dlq -h`"}},
		{"a check after the flags", nil, []string{"send", "--content", "x"},
			[]string{"--chat is required", "`worker send -h`"}},
		{"everything wrong at once",
			map[string]string{"WORKER_ACK_WAIT": "30", "WORKER_CONCURRENCY": "many", "WORKER_MAX_DELIVER": "1"},
			[]string{"run", "--shutdown-grace", "soon", "--log-level", "loud"},
			[]string{`--shutdown-grace "soon": want a duration such as 30s`,
				`WORKER_ACK_WAIT="30" (for --ack-wait): no unit: want a duration such as 30s`,
				`WORKER_CONCURRENCY="many" (for --concurrency): want a whole number`,
				`--log-level "loud"`,
				"--max-deliver 1",
				"GOSQUARED_API_KEY",
				"`worker run -h`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, stderr, code := userSees(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			got := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(got) != len(tt.lines) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(tt.lines), stderr)
			}
			for i, want := range tt.lines {
				if !strings.Contains(got[i], want) {
					t.Errorf("line %d %q lacks %q", i+1, got[i], want)
				}
			}
		})
	}
}

// TestHelpListsTheFlagsUsed: each command's -h lists exactly the flags it
// reads; the retention flags belong to run and provision only.
func TestHelpListsTheFlagsUsed(t *testing.T) {
	conn := []string{"nats-creds", "nats-nkey", "nats-url", "nats-user", "tls-ca", "tls-cert", "tls-key"}
	subjects := append([]string{"subject-prefix"}, conn...)
	filters := []string{"chat", "class", "id", "limit", "since", "type", "until"}
	project := []string{"project"} // contract v2: every command that publishes or reads records
	retention := []string{"commands-max-age", "dlq-max-age", "dlq-max-bytes", "dlq-max-msgs", "duplicate-window", "results-max-age"}
	consumer := []string{"ack-wait", "concurrency", "max-deliver"}
	with := func(groups ...[]string) []string { return slices.Concat(groups...) }
	tests := []struct {
		cmd   []string
		flags []string
	}{
		{[]string{"demo"}, []string{"http-addr", "log-format", "log-level", "timeout"}},
		{[]string{"status"}, with(subjects, project, []string{"idempotency-bucket", "json", "timeout"})},
		{[]string{"schedules", "ls"}, with(subjects, project, []string{"json"})},
		{[]string{"schedules", "run"}, with(subjects, project, []string{"json"})},
		{[]string{"cancel"}, with(subjects, project)},
		{[]string{"dlq", "ls"}, with(subjects, project, filters, []string{"json"})},
		{[]string{"dlq", "show"}, with(subjects, project, []string{"json"})},
		{[]string{"dlq", "replay"}, with(subjects, project, filters, []string{"dry-run", "include-invalid", "not-after", "rate"})},
		{[]string{"dlq", "purge"}, with(subjects, project, filters, []string{"yes"})},
		{[]string{"export"}, with(conn, []string{"bucket", "chat-api-url", "checkpoint-bucket", "concurrency", "default-project", "json", "out", "project", "replicas", "since", "until"})},
		{[]string{"provision"}, with(subjects, retention, consumer, []string{"idempotency-bucket", "idempotency-ttl", "nats-connect-timeout", "projects-bucket", "replicas"})},
		{[]string{"projects", "ls"}, with(subjects, []string{"json", "projects-bucket"})},
		{[]string{"projects", "pause"}, with(subjects, []string{"by", "projects-bucket", "reason"})},
		{[]string{"projects", "resume"}, with(subjects, []string{"projects-bucket"})},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			_, stderr, code := userSees(t, append(tt.cmd, "-h")...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			got := helpFlags(stderr)
			want := slices.Sorted(slices.Values(tt.flags))
			if !slices.Equal(got, want) {
				t.Errorf("-h lists\n  %v\nwant\n  %v", got, want)
			}
		})
	}
}

var helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// helpFlags are the flag names a command's -h lists, sorted.
func helpFlags(help string) []string {
	var names []string
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return names
}

// TestSendBeforeProvisionSaysSo: publishing to a server without the streams
// says to run worker provision, as worker dlq ls does.
func TestSendBeforeProvisionSaysSo(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	for _, args := range [][]string{
		{"send", "--nats-url", url, "--chat", "c", "--content", "hi"},
		{"archive", "--nats-url", url, "--chat", "c", "--wait", "--timeout", "2s"},
		{"send", "--nats-url", url, "--chat", "c", "--content", "hi", "--in", "1h"},
		{"dlq", "ls", "--nats-url", url},
	} {
		_, stderr, code := userSees(t, args...)
		if code != 1 || !strings.Contains(stderr, "run `worker provision`") {
			t.Errorf("%v: exit %d, %q; want exit 1 saying to run `worker provision`", args, code, stderr)
		}
	}
}

// TestRunWaitsForNATS: worker run started before its NATS server waits for
// it, saying so, and starts once it is up; it gives up after
// --nats-connect-timeout with a message that points at the server, not at
// worker run.
func TestRunWaitsForNATS(t *testing.T) {
	srv := natstest.RunServer(t)
	url := srv.ClientURL()
	start := natstest.StopServer(t, srv)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")

	_, stderr, code := userSees(t, "run", "--nats-url", url, "--http-addr", "", "--log-format", "json", "--nats-connect-timeout", "300ms")
	if code != 1 || !strings.Contains(stderr, "--nats-connect-timeout") || strings.Contains(stderr, "without --nats-url") {
		t.Errorf("run with no server: exit %d, %q; want exit 1 naming --nats-connect-timeout", code, stderr)
	}

	waitsThenStarts(t, url, "NATS is not reachable yet; retrying", func() { start() })
}

// waitsThenStarts runs worker run against url until it logs waiting, calls
// ready, which brings up what it waits for, and checks that it starts.
func waitsThenStarts(t *testing.T, url, waiting string, ready func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", url, "--http-addr", "", "--log-format", "json", "--chat-api-url", "http://127.0.0.1:9/chat/v1"},
			nil, &bytes.Buffer{}, logs)
	}()
	eventuallyOK(t, func() error {
		if !strings.Contains(logs.String(), waiting) {
			return fmt.Errorf("%q not logged yet", waiting)
		}
		return nil
	})
	ready()
	eventuallyOK(t, func() error {
		if !strings.Contains(logs.String(), `"msg":"worker started"`) {
			return errors.New("worker not started yet")
		}
		return nil
	})
	cancel()
	// Stopped as it starts, the worker may report the cancellation.
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v\n%s", err, logs.String())
	}
}

// TestRunWaitsForJetStream: worker run whose server answers but whose
// JetStream does not yet (a cluster still electing its leader answers
// nothing, as a server without JetStream does) waits, saying so, and starts
// once JetStream answers, instead of exiting for Kubernetes to restart it
// with a growing delay; after --nats-connect-timeout it gives up, naming it.
func TestRunWaitsForJetStream(t *testing.T) {
	srv := natstest.RunServer(t, func(o *server.Options) { o.JetStream = false })
	url := srv.ClientURL()
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")

	_, stderr, code := userSees(t, "run", "--nats-url", url, "--http-addr", "", "--log-format", "json", "--nats-connect-timeout", "300ms")
	if code != 1 || !strings.Contains(stderr, "--nats-connect-timeout") || !strings.Contains(stderr, "nats-server -js") {
		t.Errorf("run without JetStream: exit %d, %q; want exit 1 naming --nats-connect-timeout and how to enable JetStream", code, stderr)
	}

	waitsThenStarts(t, url, "JetStream is not answering yet; retrying", func() {
		if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestProvisionWaitsForJetStream: worker provision, run as a Kubernetes Job
// beside a NATS cluster that is starting, waits for JetStream as worker run
// does, saying so on standard error.
func TestProvisionWaitsForJetStream(t *testing.T) {
	srv := natstest.RunServer(t, func(o *server.Options) { o.JetStream = false })
	stdout, stderr := &syncWriter{w: &bytes.Buffer{}}, &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"provision", "--nats-url", srv.ClientURL()}, nil, stdout, stderr)
	}()
	eventuallyOK(t, func() error {
		if !strings.Contains(stderr.String(), "JetStream is not answering yet") {
			return errors.New("no retry said yet")
		}
		return nil
	})
	if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("provision: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "are in place") {
		t.Errorf("provision said %q", stdout.String())
	}
}
