package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/internal/natstest"
)

// TestRetentionFlags: the retention flags and their variables reach the
// streams and the bucket through worker provision, on existing streams too,
// which prints what it changed; a combination the policy refuses is a usage
// error that changes nothing, and one that weakens it is a warning. worker
// run never changes the shared streams' retention: it keeps theirs and
// warns of each flag that differs.
func TestRetentionFlags(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	const day = 24 * time.Hour
	check := func(commands, results, window, ttl time.Duration) {
		t.Helper()
		for name, age := range map[string]time.Duration{"CHAT_COMMANDS": commands, "CHAT_RESULTS": results} {
			s, err := js.Stream(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if cfg := s.CachedInfo().Config; cfg.MaxAge != age || cfg.Duplicates != window {
				t.Errorf("%s: max age %v, duplicate window %v; want %v, %v", name, cfg.MaxAge, cfg.Duplicates, age, window)
			}
		}
		kv, err := js.KeyValue(t.Context(), "CHAT_IDEMPOTENCY")
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != ttl {
			t.Errorf("idempotency bucket TTL %v, want %v", st.TTL(), ttl)
		}
	}
	var stdout bytes.Buffer
	provision := func(args ...string) (string, error) {
		var stderr bytes.Buffer
		stdout.Reset()
		err := run(t.Context(), append([]string{"provision", "--nats-url", srv.ClientURL()}, args...), nil, &stdout, &stderr)
		return stderr.String(), err
	}

	// Flags; the ids are remembered less long than commands are kept.
	stderr, err := provision("--commands-max-age", "72h", "--results-max-age", "48h", "--duplicate-window", "1h", "--idempotency-ttl", "48h")
	if err != nil {
		t.Fatal(err)
	}
	check(3*day, 2*day, time.Hour, 2*day)
	if !strings.Contains(stderr, "warning: command ids are remembered 48h (--idempotency-ttl), commands are kept 72h (--commands-max-age)") {
		t.Errorf("provision did not warn of the records expiring before the commands:\n%s", stderr)
	}

	// Variables, on the existing streams; the whole policy kept: no warning.
	t.Setenv("WORKER_COMMANDS_MAX_AGE", "240h")
	t.Setenv("WORKER_RESULTS_MAX_AGE", "336h")
	t.Setenv("WORKER_DUPLICATE_WINDOW", "2m")
	t.Setenv("WORKER_IDEMPOTENCY_TTL", "240h")
	if stderr, err = provision(); err != nil {
		t.Fatal(err)
	}
	check(10*day, 14*day, 2*time.Minute, 10*day)
	if stderr != "" {
		t.Errorf("provision warned with the whole policy kept:\n%s", stderr)
	}
	for _, change := range []string{"changed CHAT_COMMANDS max age: 72h -> 240h (--commands-max-age)",
		"changed CHAT_RESULTS max age: 48h -> 336h (--results-max-age)", "changed CHAT_DLQ duplicate window: 1h -> 2m (--duplicate-window)"} {
		if !strings.Contains(stdout.String(), change) {
			t.Errorf("provision did not say %q:\n%s", change, stdout.String())
		}
	}

	// Refused, before anything is changed.
	_, err = provision("--idempotency-ttl", "90s")
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--idempotency-ttl") || !strings.Contains(err.Error(), "--duplicate-window") {
		t.Errorf("provision with the TTL within the window: %v, want a usage error naming both flags", err)
	}
	check(10*day, 14*day, 2*time.Minute, 10*day)

	// worker run keeps the streams' retention, and says which flag differs.
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")
	t.Setenv("WORKER_RESULTS_MAX_AGE", "120h")
	t.Setenv("WORKER_IDEMPOTENCY_TTL", "100h")
	logs, _ := startRun(t, srv.ClientURL(), "http://127.0.0.1:9/chat/v1")
	check(10*day, 14*day, 2*time.Minute, 10*day)
	if !strings.Contains(logs.String(), `"stream":"CHAT_RESULTS","setting":"max age","flag":"--results-max-age","stream_value":"336h","flag_value":"120h"`) {
		t.Errorf("worker run did not warn that --results-max-age differs from the stream's:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"bucket":"CHAT_IDEMPOTENCY","flag":"--idempotency-ttl","bucket_value":"240h0m0s","flag_value":"100h0m0s"`) {
		t.Errorf("worker run did not warn that --idempotency-ttl differs from the bucket's:\n%s", logs.String())
	}
}

// TestRetentionFlagErrors: worker run refuses retention flags that cannot
// work, alone or together, naming them.
func TestRetentionFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		says []string
	}{
		{[]string{"--results-max-age", "0"}, []string{"--results-max-age 0s: want a positive duration"}},
		{[]string{"--commands-max-age", "-1h"}, []string{"--commands-max-age -1h0m0s"}},
		{[]string{"--duplicate-window", "0"}, []string{"--duplicate-window 0s"}},
		{[]string{"--idempotency-ttl", "10m"}, []string{"the idempotency TTL 10m (--idempotency-ttl) must be longer than the duplicate window 10m (--duplicate-window)"}},
		{[]string{"--duplicate-window", "200h", "--idempotency-ttl", "300h"}, []string{"outlasts the commands' retention 168h (--commands-max-age)",
			"outlasts the results' retention 168h (--results-max-age)"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := run(t.Context(), append([]string{"run"}, tt.args...), nil, &bytes.Buffer{}, &bytes.Buffer{})
			if !errors.As(err, new(usageError)) {
				t.Fatalf("run %v: %v, want a usage error", tt.args, err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}
