package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/workertest"
)

func TestCommandLineErrors(t *testing.T) {
	t.Setenv("GOSQUARED_API_KEY", "")
	t.Setenv("GOSQUARED_API_KEY_FILE", "")
	tests := []struct {
		name  string
		args  []string
		usage bool     // a usage error (exit 2)
		says  []string // parts of the message
	}{
		{"no command", nil, true, []string{"no command"}},
		{"unknown command", []string{"frob"}, true, []string{`unknown command "frob"`}},
		{"run without a key", []string{"run"}, false, []string{"GOSQUARED_API_KEY", "worker demo"}},
		{"bad flag", []string{"run", "--concurency", "3"}, true, []string{"concurency"}},
		{"bad concurrency", []string{"run", "--concurrency", "0"}, true, []string{"--concurrency 0"}},
		{"bad duration", []string{"run", "--shutdown-grace", "soon"}, true, []string{"shutdown-grace"}},
		{"bad log level", []string{"demo", "--log-level", "loud"}, true, []string{"--log-level"}},
		{"send without chat", []string{"send", "--content", "x"}, true, []string{"--chat is required"}},
		{"send without content", []string{"send", "--chat", "x"}, true, []string{`"content" is empty`}},
		{"send stray argument", []string{"send", "--chat", "x", "hello", "there"}, true, []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.As(err, new(usageError)); got != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", got, tt.usage, err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error()+stderr.String(), s) {
					t.Errorf("message %q (stderr %q) does not say %q", err, stderr.String(), s)
				}
			}
		})
	}
}

func TestEnvironmentFillsFlags(t *testing.T) {
	t.Setenv("WORKER_CONCURRENCY", "-4")
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")
	err := run(t.Context(), []string{"run"}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--concurrency -4") {
		t.Errorf("error = %v, want the bad WORKER_CONCURRENCY reported", err)
	}
	t.Setenv("WORKER_CONCURRENCY", "many")
	err = run(t.Context(), []string{"run"}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "WORKER_CONCURRENCY") {
		t.Errorf("error = %v, want WORKER_CONCURRENCY named", err)
	}
}

func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"demo"}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"succeeded", "duplicate", "dead letter", "invalid", `unknown field "contnet"`, "permanent",
		"visitor-7  expired  attempts=0", ", ran at "} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// A recurring schedule's firing runs under its own id; a quiet-hours
	// command is held.
	if !regexp.MustCompile(`note +visitor-42 +succeeded .*id=[0-9a-f-]+@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).MatchString(out) ||
		!strings.Contains(out, "The quiet-hours command is waiting") {
		t.Errorf("demo output lacks a recurring firing or the quiet-hours hold:\n%s", out)
	}
	// Two injected 503s, and perhaps random ones: at least three calls.
	if !regexp.MustCompile(`visitor-503 +succeeded +attempts=([3-9]|\d\d)`).MatchString(out) {
		t.Errorf("demo output lacks a retried command (visitor-503, attempts >= 3):\n%s", out)
	}
}

// TestRunSendAndDrain runs the real wiring: worker run against a NATS
// server and the simulator, a command published with worker send, and a
// shutdown that returns cleanly.
func TestRunSendAndDrain(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	_ = nc
	sim := chatsim.New(chatsim.Config{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "test-key")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	logs := &syncWriter{w: &bytes.Buffer{}}
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", "127.0.0.1:0"},
			nil, &bytes.Buffer{}, logs)
	}()

	var id bytes.Buffer
	eventuallyOK(t, func() error {
		id.Reset()
		return run(t.Context(), []string{"send", "--nats-url", srv.ClientURL(), "--chat", "email:jo@example.com", "--content", "Hi Jo", "--id", "cli-1"}, nil, &id, &bytes.Buffer{})
	})
	if strings.TrimSpace(id.String()) != "cli-1" {
		t.Errorf("send printed %q, want the id", id.String())
	}
	eventuallyOK(t, func() error {
		s, err := js.Stream(t.Context(), "CHAT_RESULTS")
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(t.Context(), "chat.results.send.email%3Ajo%40example%2Ecom")
		if err != nil {
			return err
		}
		if !strings.Contains(string(m.Data), `"id":"cli-1"`) {
			return errors.New("wrong result")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after shutdown, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if n := len(sim.Effects()); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
	if strings.Contains(logs.String(), "test-key") {
		t.Error("the API key appears in the logs")
	}
}

// eventuallyOK polls f until it returns nil; a failure says its last error.
func eventuallyOK(t *testing.T, f func() error) {
	t.Helper()
	var err error
	workertest.Eventually(t, time.Minute, func() bool { err = f(); return err == nil }, "%v", &err)
}

// TestReadiness: /readyz follows the NATS connection, /healthz does not,
// and /metrics serves the worker's metrics.
func TestReadiness(t *testing.T) {
	srv := natstest.RunServer(t)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")
	_, get := startRun(t, srv.ClientURL(), simURL(t))
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 200 {
			return fmt.Errorf("/readyz = %d %s", code, body)
		}
		return nil
	})
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "chatworker_commands_in_flight") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics = %d, lacks the worker's metrics", code)
	}

	restart := natstest.StopServer(t, srv)
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "NATS") {
			return fmt.Errorf("/readyz = %d %s while NATS is down, want 503", code, body)
		}
		return nil
	})
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d while NATS is down, want 200", code)
	}
	restart()
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 200 {
			return fmt.Errorf("/readyz = %d %s after NATS came back", code, body)
		}
		return nil
	})
}

// listenAddr finds the HTTP address in the worker's JSON logs.
func listenAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "HTTP endpoints listening" {
			return entry.Addr
		}
	}
	return ""
}

func TestProvision(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	for range 2 { // a second run changes nothing and succeeds
		var out bytes.Buffer
		if err := run(t.Context(), []string{"provision", "--nats-url", srv.ClientURL()}, nil, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("provision: %v", err)
		}
		if !strings.Contains(out.String(), "CHAT_COMMANDS") {
			t.Errorf("provision printed %q", out.String())
		}
	}
	for _, name := range []string{"CHAT_COMMANDS", "CHAT_RESULTS", "CHAT_DLQ", "KV_CHAT_IDEMPOTENCY"} {
		if _, err := js.Stream(t.Context(), name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	if _, err := js.Consumer(t.Context(), "CHAT_COMMANDS", "chat-worker"); err != nil {
		t.Errorf("consumer: %v", err)
	}
}

// startRun runs `worker run` on the NATS server at natsURL against the API
// at apiURL until the test ends. It returns the worker's JSON log and a GET
// on its HTTP address, once the log names it.
func startRun(t *testing.T, natsURL, apiURL string) (*syncWriter, func(path string) (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", natsURL, "--chat-api-url", apiURL,
			"--http-addr", "127.0.0.1:0", "--log-format", "json"}, nil, &bytes.Buffer{}, logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	eventuallyOK(t, func() error {
		if addr = listenAddr(logs.String()); addr == "" {
			return errors.New("no listen address logged yet")
		}
		return nil
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	return logs, get
}

// simURL serves the Chat API simulator for a test and returns its base URL.
func simURL(t *testing.T) string {
	t.Helper()
	hs := httptest.NewServer(chatsim.New(chatsim.Config{}))
	t.Cleanup(hs.Close)
	return hs.URL + "/chat/v1"
}

// TestUnreachableAPIAtStart: a worker whose Chat API cannot be reached is
// not ready and says why (the default project is paused for an outage);
// once the API answers, a check resumes the project and the worker is
// ready, and the command published meanwhile runs, dead-lettering nothing.
func TestUnreachableAPIAtStart(t *testing.T) {
	srv := natstest.RunServer(t)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet: connections are refused
	_, get := startRun(t, srv.ClientURL(), "http://"+addr+"/chat/v1")
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "paused for an outage") {
			return fmt.Errorf("/readyz = %d %s, want 503 naming the outage", code, body)
		}
		return nil
	})
	if _, _, err := runCLI(t, "send", "--nats-url", srv.ClientURL(), "--chat", "c1", "--content", "hi", "--id", "early-1"); err != nil {
		t.Fatal(err)
	}
	for {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
	}
	hs := httptest.NewUnstartedServer(chatsim.New(chatsim.Config{}))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 200 {
			return fmt.Errorf("/readyz = %d %s once the API answers", code, body)
		}
		return nil
	})
	eventuallyOK(t, func() error {
		if out, _, err := runCLI(t, "status", "early-1", "--nats-url", srv.ClientURL()); err != nil || !strings.Contains(out, "succeeded") {
			return fmt.Errorf("the command published during the outage: %v\n%s", err, out)
		}
		return nil
	})
}
