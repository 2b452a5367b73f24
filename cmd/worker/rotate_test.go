package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/internal/natstest"
)

// TestWrongKeyPausesUntilTheKeyFileIsRotated runs the real wiring with a
// wrong key in GOSQUARED_API_KEY_FILE: the worker checks it before it is
// ready, /readyz answers 503 naming the cause, a command waits (no dead
// letter), and once the file holds the right key the worker becomes ready
// and the command is done, without a restart.
func TestWrongKeyPausesUntilTheKeyFileIsRotated(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{Credentials: map[string][]string{"right-key": {"GSN-1-S"}}})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte("wrong-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOSQUARED_API_KEY_FILE", keyFile)
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")

	logs, get := startRun(t, srv.ClientURL(), hs.URL+"/chat/v1")
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "paused") || !strings.Contains(body, "401") {
			return fmt.Errorf("/readyz = %d %s, want 503 naming the paused default project", code, body)
		}
		return nil
	})
	if _, body := get("/metrics"); !strings.Contains(body, `chatworker_project_paused{project="default"} 1`) {
		t.Error("/metrics does not show the default project paused")
	}
	if err := run(t.Context(), []string{"send", "--nats-url", srv.ClientURL(), "--chat", "c1", "--content", "hi", "--id", "rot-1"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(keyFile, []byte("right-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventuallyOK(t, func() error {
		if code, body := get("/readyz"); code != 200 {
			return fmt.Errorf("/readyz = %d %s after the key file was rotated", code, body)
		}
		return nil
	})
	eventuallyOK(t, func() error {
		s, err := js.Stream(t.Context(), "CHAT_RESULTS")
		if err != nil {
			return err
		}
		if _, err := s.GetLastMsgForSubject(t.Context(), "chat.results.send.c1"); err != nil {
			return err
		}
		return nil
	})
	s, err := js.Stream(t.Context(), "CHAT_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != 0 {
		t.Errorf("dead letters: %v (%v), want none", info.State.Msgs, err)
	}
	if _, body := get("/metrics"); !strings.Contains(body, `chatworker_project_paused{project="default"} 0`) {
		t.Error("/metrics does not show the default project resumed")
	}
	if l := logs.String(); strings.Count(l, "project paused") != 1 || strings.Count(l, "project resumed") != 1 || strings.Contains(l, "wrong-key") || strings.Contains(l, "right-key") {
		t.Errorf("want one line per state change and no key in the logs:\n%s", l)
	}
}
