package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	err := run(ctx, args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// Schedule, list and cancel from the command line; no worker runs, so the
// schedules stay pending while the test looks.
func TestSchedulesCommandLine(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	out, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "email:jo@example.com", "--content", "hi",
		"--at", at.Format(time.RFC3339), "--not-after", "15m", "--id", "s-1")
	if err != nil || strings.TrimSpace(out) != "s-1" {
		t.Fatalf("send --at: %q, %v", out, err)
	}
	if out, _, err = runCLI(t, "archive", "--nats-url", url, "--chat", "c2", "--in", "2h"); err != nil {
		t.Fatalf("archive --in: %v", err)
	}
	archiveID := strings.TrimSpace(out)

	out, _, err = runCLI(t, "schedules", "ls", "--nats-url", url, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []actions.Pending
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("schedules ls --json: %v\n%s", err, out)
	}
	if len(list) != 2 || list[0].ID != "s-1" || list[0].ChatID != "email:jo@example.com" || !list[0].At.Equal(at) ||
		!list[0].NotAfter.Equal(at.Add(15*time.Minute)) || list[1].ID != archiveID || list[1].Type != contract.TypeArchive {
		t.Fatalf("schedules ls --json = %+v", list)
	}
	out, _, err = runCLI(t, "schedules", "ls", "--nats-url", url)
	if err != nil || !strings.Contains(out, "s-1") || !strings.Contains(out, at.Format(time.RFC3339)) {
		t.Errorf("schedules ls: %v\n%s", err, out)
	}

	out, _, err = runCLI(t, "cancel", "--nats-url", url, "s-1")
	if err != nil || !strings.Contains(out, "cancelled send s-1") {
		t.Fatalf("cancel: %q, %v", out, err)
	}
	tests := []struct {
		name    string
		args    []string
		usage   bool   // a usage error (exit 2) rather than a failure (exit 1)
		problem string // part of the error
	}{
		{"cancel again", []string{"cancel", "--nats-url", url, "s-1"}, false, "no pending schedule"},
		{"cancel unknown", []string{"cancel", "--nats-url", url, "nope"}, false, "unknown, already fired"},
		{"cancel without id", []string{"cancel", "--nats-url", url}, true, "give the id"},
		{"at and in", []string{"note", "--nats-url", url, "--chat", "c", "--content", "x", "--at", at.Format(time.RFC3339), "--in", "1m"}, true, "give one"},
		{"at without zone", []string{"note", "--nats-url", url, "--chat", "c", "--content", "x", "--at", "2026-11-25T09:00:00"}, true, "with a zone"},
		{"bad deadline", []string{"note", "--nats-url", url, "--chat", "c", "--content", "x", "--not-after", "tomorrow"}, true, "--not-after"},
		{"deadline before the schedule", []string{"note", "--nats-url", url, "--chat", "c", "--content", "x", "--in", "1h", "--not-after", at.Add(-2 * time.Hour).Format(time.RFC3339)}, true, "would expire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.problem) || errors.As(err, new(usageError)) != tt.usage {
				t.Errorf("err = %v (usage error: %v), want one mentioning %q (usage error: %v)", err, errors.As(err, new(usageError)), tt.problem, tt.usage)
			}
		})
	}
	out, _, err = runCLI(t, "schedules", "ls", "--nats-url", url, "--json")
	if err != nil || strings.Contains(out, "s-1") || !strings.Contains(out, archiveID) {
		t.Errorf("after cancel, schedules ls: %v\n%s", err, out)
	}
}

// A deadline given as a duration counts from now, or from the schedule's
// time when there is one.
func TestTimingFlags(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		tm           timing
		wantAt, want time.Time
	}{
		{"deadline from now", timing{notAfter: "15m"}, time.Time{}, now.Add(15 * time.Minute)},
		{"deadline as a time", timing{notAfter: "2026-11-25T09:15:00+01:00"}, time.Time{}, now.Add(15 * time.Minute)},
		{"deadline from the schedule", timing{in: time.Hour, notAfter: "15m"}, now.Add(time.Hour), now.Add(75 * time.Minute)},
		{"at 09:00, not after 09:15", timing{at: "2026-11-25T09:00:00Z", notAfter: "2026-11-25T09:15:00Z"}, now.Add(time.Hour), now.Add(75 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cmd contract.Command
			pl, err := tt.tm.apply(&cmd, now)
			if err != nil || !pl.at.Equal(tt.wantAt) || !cmd.NotAfter.Equal(tt.want) {
				t.Errorf("apply = %s, not_after %s, %v; want %s, %s", pl.at, cmd.NotAfter, err, tt.wantAt, tt.want)
			}
		})
	}
}

// Each mistake in the timing flags is refused with a sentence that names
// the flag; times in the past are mistakes.
func TestTimingFlagsRefused(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		tm      timing
		problem string
	}{
		{"at in the past", timing{at: "2026-11-25T07:59:00Z"}, "--at 2026-11-25T07:59:00Z is in the past (it is 2026-11-25T08:00:00Z)"},
		{"deadline in the past", timing{notAfter: "2026-11-25T07:00:00Z"}, "--not-after 2026-11-25T07:00:00Z is in the past"},
		{"deadline now", timing{notAfter: "2026-11-25T08:00:00Z"}, "is in the past"},
		{"every and cron", timing{every: time.Hour, cron: "@daily"}, "give one"},
		{"every with at", timing{every: time.Hour, at: "2026-11-25T09:00:00Z"}, "drop --at/--in"},
		{"tz without cron", timing{every: time.Hour, tz: "Europe/London"}, "--tz goes with --cron"},
		{"unknown zone", timing{cron: "@daily", tz: "Europe/Londres"}, "not an IANA zone"},
		{"cron of five fields", timing{cron: "0 9 * * 1-5"}, "want 6"},
		{"every under a second", timing{every: 500 * time.Millisecond}, "at least 1s"},
		{"recurring with a deadline", timing{every: time.Hour, notAfter: "15m"}, "share the one deadline"},
		{"debounce without in", timing{debounce: "k"}, "--debounce KEY takes --in"},
		{"debounce with at", timing{debounce: "k", at: "2026-11-25T09:00:00Z"}, "--debounce KEY takes --in"},
		{"debounce with replace", timing{debounce: "k", in: time.Minute, replace: true}, "drop --replace"},
		{"replace now", timing{replace: true}, "--replace replaces a pending schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cmd contract.Command
			if _, err := tt.tm.apply(&cmd, now); err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("apply = %v, want an error mentioning %q", err, tt.problem)
			}
		})
	}
	var cmd contract.Command
	pl, err := (&timing{debounce: "cart", in: 5 * time.Minute, notAfter: "30m"}).apply(&cmd, now)
	if err != nil || pl.debounce != "cart" || pl.delay != 5*time.Minute || !cmd.NotAfter.Equal(now.Add(30*time.Minute)) {
		t.Errorf("--debounce cart --in 5m --not-after 30m: %+v, not_after %s, %v; want the deadline from now", pl, cmd.NotAfter, err)
	}
}

// Recurring, debounced and replaced schedules from the command line, with
// --json printing the schedule.
func TestSchedulesCommandLineRecurringAndDebounce(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	out, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "hi", "--at", at.Format(time.RFC3339), "--id", "s-1", "--json")
	var p actions.Pending
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.ID != "s-1" || !p.At.Equal(at) || p.Subject == "" {
		t.Fatalf("send --at --json: %q, %v; want the schedule as JSON", out, err)
	}
	_, _, err = runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "bye", "--at", at.Format(time.RFC3339), "--id", "s-1")
	if !errors.Is(err, actions.ErrIDReused) || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("send --at with s-1's id and another body: %v, want it refused, naming --replace", err)
	}
	if _, _, err = runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "bye", "--in", "2h", "--id", "s-1", "--replace"); err != nil {
		t.Fatalf("--replace: %v", err)
	}

	out, stderr, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "Good morning", "--cron", "0 0 9 * * 1-5", "--tz", "Europe/London", "--id", "daily", "--json")
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.Cron != "0 0 9 * * 1-5" || p.TZ != "Europe/London" || p.At.Before(time.Now()) {
		t.Fatalf("send --cron --tz --json: %q, %v %s", out, err, stderr)
	}
	if _, stderr, err = runCLI(t, "archive", "--nats-url", url, "--chat", "c2", "--every", "7d", "--id", "weekly"); err != nil || !strings.Contains(stderr, "weekly@<time>") {
		t.Fatalf("archive --every 7d: %v %s", err, stderr)
	}
	for i := range 3 {
		if _, _, err := runCLI(t, "note", "--nats-url", url, "--chat", "c3", "--content", fmt.Sprint("event ", i), "--debounce", "k", "--in", "5m", "--id", fmt.Sprint("ev-", i)); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err = runCLI(t, "schedules", "ls", "--nats-url", url)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cron 0 0 9 * * 1-5 Europe/London", "every 168h0m0s", "debounce k", "ev-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("schedules ls lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ev-0") || strings.Contains(out, "ev-1") || strings.Count(out, "s-1") != 1 {
		t.Errorf("schedules ls keeps replaced commands:\n%s", out)
	}
	out, _, err = runCLI(t, "cancel", "--nats-url", url, "daily")
	if err != nil || !strings.Contains(out, "no firing after") {
		t.Errorf("cancel daily: %q, %v", out, err)
	}
}

// Replaying an expired command says beforehand that it will expire again,
// unless --not-after gives it a new deadline.
func TestDLQReplaySaysExpiredWillExpireAgain(t *testing.T) {
	url, js := dlqFixture(t)
	cmd, _ := json.Marshal(contract.Command{ID: "late-1", Type: contract.TypeSend, ChatID: "chat-l", Content: "hi", NotAfter: time.Now().Add(-time.Hour)})
	rec, _ := json.Marshal(contract.DeadLetter{Command: cmd, Subject: contract.Subjects{}.Command(contract.TypeSend, "chat-l"),
		Error: contract.ErrorInfo{Class: contract.ClassExpired, Message: "its deadline passed"}, Worker: "test/1", DeadAt: time.Now()})
	if _, err := js.Publish(t.Context(), contract.Subjects{}.DeadLetter(contract.TypeSend, "chat-l"), rec); err != nil {
		t.Fatal(err)
	}
	out, _, err := runDLQTest(t, "", "ls", "--nats-url", url, "--class", "expired", "--json")
	if err != nil || !strings.Contains(out, "late-1") || strings.Contains(out, "a-1") {
		t.Fatalf("dlq ls --class expired: %v\n%s", err, out)
	}
	tests := []struct {
		name string
		args []string
		warn bool
	}{
		{"as it is", nil, true},
		{"with a new deadline", []string{"--not-after", "1h"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runDLQTest(t, "", append([]string{"replay", "--nats-url", url, "--class", "expired", "--dry-run"}, tt.args...)...)
			if err != nil || strings.Contains(out, "expire again") != tt.warn {
				t.Errorf("replay --dry-run %v: %v; warning shown: %v, want %v\n%s", tt.args, err, !tt.warn, tt.warn, out)
			}
		})
	}
}

// --quiet-hours and --quiet-tz put the visitor's quiet window on the
// command; half of it is a usage error.
func TestQuietHoursFlags(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	out, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "hi", "--quiet-hours", "21:00-08:00", "--quiet-tz", "Europe/London", "--json")
	var cmd contract.Command
	if err != nil || json.Unmarshal([]byte(out), &cmd) != nil || cmd.QuietHours == nil || *cmd.QuietHours != (contract.QuietHours{Start: "21:00", End: "08:00", TZ: "Europe/London"}) {
		t.Fatalf("send --quiet-hours --json: %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"--quiet-hours", "21:00-08:00"},
		{"--quiet-tz", "Europe/London"},
		{"--quiet-hours", "21:00", "--quiet-tz", "Europe/London"},
		{"--quiet-hours", "21:00-8am", "--quiet-tz", "Europe/London"},
		{"--quiet-hours", "21:00-08:00", "--quiet-tz", "Europe/Londres"},
	} {
		_, _, err := runCLI(t, append([]string{"send", "--nats-url", url, "--chat", "c1", "--content", "hi"}, args...)...)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "quiet") {
			t.Errorf("%v: %v, want a usage error about the quiet hours", args, err)
		}
	}
}

// --frequency-cap puts a cap on a send; a malformed one, or one on a note,
// is a usage error.
func TestFrequencyCapFlag(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	out, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "hi", "--frequency-cap", "3/24h", "--json")
	var cmd contract.Command
	if err != nil || json.Unmarshal([]byte(out), &cmd) != nil || cmd.FrequencyCap == nil || *cmd.FrequencyCap != (contract.FrequencyCap{Max: 3, Per: "24h"}) {
		t.Fatalf("send --frequency-cap --json: %q, %v", out, err)
	}
	for _, v := range []string{"3", "0/24h", "3/24", "3/31d", "three/1h"} {
		_, _, err := runCLI(t, "send", "--nats-url", url, "--chat", "c1", "--content", "hi", "--frequency-cap", v)
		if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "frequency") {
			t.Errorf("--frequency-cap %s: %v, want a usage error about the cap", v, err)
		}
	}
	if _, _, err := runCLI(t, "note", "--nats-url", url, "--chat", "c1", "--content", "hi", "--frequency-cap", "3/24h"); !errors.As(err, new(usageError)) {
		t.Errorf("note --frequency-cap: %v, want a usage error (no such flag)", err)
	}
}

// schedules run publishes a schedule's command now and removes the
// schedule; a recurring one keeps its series. No worker runs: the test
// looks at the commands stream.
func TestSchedulesRunCommandLine(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	for _, args := range [][]string{
		{"send", "--chat", "c1", "--content", "hi", "--in", "1h", "--id", "later"},
		{"note", "--chat", "c2", "--content", "report", "--every", "24h", "--id", "daily"},
	} {
		if _, _, err := runCLI(t, append(args, "--nats-url", url)...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	out, _, err := runCLI(t, "schedules", "run", "--nats-url", url, "later")
	if err != nil || !strings.Contains(out, "published send later for chat c1 now; its schedule for") {
		t.Fatalf("schedules run later: %q, %v", out, err)
	}
	out, _, err = runCLI(t, "schedules", "run", "--nats-url", url, "daily", "--json")
	var ran []actions.Ran
	if err != nil || json.Unmarshal([]byte(out), &ran) != nil || len(ran) != 1 || !ran[0].Kept || !strings.HasPrefix(ran[0].Command, "daily@") {
		t.Fatalf("schedules run daily --json: %q, %v", out, err)
	}

	stream, err := js.Stream(t.Context(), contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	for subject, id := range map[string]string{"chat.commands.send.c1": "later", "chat.commands.note.c2": ran[0].Command} {
		m, err := stream.GetLastMsgForSubject(t.Context(), subject)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if cmd, err := contract.DecodeBody(m.Data); err != nil || cmd.ID != id || m.Header.Get("Nats-Msg-Id") != id {
			t.Errorf("%s holds %s (Nats-Msg-Id %q), %v; want %s", subject, m.Data, m.Header.Get("Nats-Msg-Id"), err, id)
		}
	}
	list, err := actions.ListSchedules(t.Context(), js, actions.Subjects{})
	if err != nil || len(list) != 1 || list[0].ID != "daily" {
		t.Errorf("after run: schedules %+v, %v; want daily alone", list, err)
	}
	entries, err := audit.New(js, audit.Config{}).Recent(t.Context(), 10)
	if err != nil || len(entries) != 2 || entries[0].Action != audit.RunNow || entries[0].Via != "cli" {
		t.Errorf("audit entries %+v, %v; want two run-now from the cli", entries, err)
	}

	for _, tt := range []struct {
		name    string
		args    []string
		usage   bool
		problem string
	}{
		{"run again", []string{"schedules", "run", "--nats-url", url, "later"}, false, "no pending schedule"},
		{"run without id", []string{"schedules", "run", "--nats-url", url}, true, "give the id"},
		{"unknown verb", []string{"schedules", "fire", "--nats-url", url}, true, "want ls or run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCLI(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.problem) || errors.As(err, new(usageError)) != tt.usage {
				t.Errorf("err = %v (usage error: %v), want one mentioning %q (usage error: %v)", err, errors.As(err, new(usageError)), tt.problem, tt.usage)
			}
		})
	}
}
