package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/export"
	"github.com/chatworker/worker/internal/natstest"
)

func TestExportCommandLineErrors(t *testing.T) {
	t.Setenv("WORKER_EXPORT_OUT", "")
	t.Setenv("WORKER_EXPORT_BUCKET", "")
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"no target", []string{"export"}, "--out PATH"},
		{"two targets", []string{"export", "--out", "x", "--bucket", "B"}, "one of them"},
		{"bad since", []string{"export", "--out", "x", "--since", "yesterday"}, `--since "yesterday"`},
		{"until before since", []string{"export", "--out", "x", "--since", "2026-05-02", "--until", "2026-05-01"}, "before --since"},
		{"stray argument", []string{"export", "--out", "x", "now"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, nil, &stdout, &stderr)
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v: want a usage error saying %q", err, tt.says)
			}
		})
	}
}

// TestExportCommand runs `worker export` to a directory twice (text, then
// --json), with one conversation failing on the first run.
func TestExportCommand(t *testing.T) {
	sim := chatsim.New(chatsim.Config{})
	sim.Seed(30, 2)
	var broken atomic.Bool
	broken.Store(true)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && strings.Contains(r.URL.Path, "/chats/seed-0003/feed") {
			w.WriteHeader(http.StatusBadRequest) // permanent: no retries
			w.Write([]byte(`{"code":4003,"message":"Error 4003: invalid parameter"}`))
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	t.Setenv("CHAT_API_URL", hs.URL+"/chat/v1")
	dir := t.TempDir()

	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"export", "--out", dir}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 of 30 conversations failed (seed-0003)") {
		t.Fatalf("first run: %v, want seed-0003 named as failed\n%s", err, stdout.String())
	}
	for _, want := range []string{"exported 29 of 30 conversations (0 unchanged, 1 failed)", "to file://" + dir, "failed seed-0003: chat: feed", "400 Bad Request"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}

	broken.Store(false)
	stdout.Reset()
	if err := run(t.Context(), []string{"export", "--out", dir, "--json"}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var sum export.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	if sum.Exported != 1 || sum.Unchanged != 29 || len(sum.Failed) != 0 || !strings.HasPrefix(sum.Location, "file://"+dir) {
		t.Errorf("second run: %+v, want the failed conversation only", sum)
	}
}

// TestExportCommandArchivedBool: `worker export` against an API answering
// "archived": true works, and says once which field had another type.
func TestExportCommandArchivedBool(t *testing.T) {
	sim := chatsim.New(chatsim.Config{Quirks: chatsim.Quirks{ArchivedBool: true}})
	sim.Seed(10, 2)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	t.Setenv("CHAT_API_URL", hs.URL+"/chat/v1")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"export", "--out", t.TempDir()}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("export: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "exported 10 of 10 conversations") {
		t.Errorf("output:\n%s", stdout.String())
	}
	// One value per chat: the catch-up listing (see export.Exporter) finds
	// none, as the seeded chats are older than a minute.
	want := "warning: the API answered 10 value(s) of list[].archived (list_chats) as boolean, not number as assumed: exported as returned\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
}

// TestExportCommandBucket exports into an Object Store on a NATS server.
func TestExportCommandBucket(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{})
	sim.Seed(12, 1)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"export", "--bucket", "ARCHIVE", "--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "exported 12 of 12") || !strings.Contains(stdout.String(), "nats-object://ARCHIVE/chats/") {
		t.Errorf("output:\n%s", stdout.String())
	}
	os, err := js.ObjectStore(t.Context(), "ARCHIVE")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := os.List(t.Context())
	if err != nil || len(infos) != 12 {
		t.Errorf("%d objects (%v), want 12", len(infos), err)
	}
	if _, err := js.KeyValue(t.Context(), export.DefaultCheckpointsBucket); err != nil {
		t.Errorf("checkpoint bucket: %v", err)
	}
}

// TestExportCommandProject: --project exports with the named project's key
// from GOSQUARED_PROJECTS; an unknown project is a usage error, and the key
// never appears in it.
func TestExportCommandProject(t *testing.T) {
	sim := chatsim.New(chatsim.Config{Credentials: map[string][]string{"k": {"GSN-1-S"}, "shop-secret-key": {"GSN-2-S"}}})
	sim.Seed(3, 1)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	t.Setenv("GOSQUARED_API_KEY", "wrong-default-key")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	t.Setenv("GOSQUARED_PROJECTS", "shop:GSN-2-S=shop-secret-key")
	t.Setenv("CHAT_API_URL", hs.URL+"/chat/v1")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"export", "--out", t.TempDir(), "--project", "shop", "--json"}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("export --project shop: %v\n%s", err, stderr.String())
	}
	var sum export.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Exported != 3 {
		t.Fatalf("export --project shop: %+v, %v; want 3 conversations exported with shop's key", sum, err)
	}
	err := run(t.Context(), []string{"export", "--out", t.TempDir(), "--project", "other"}, nil, &stdout, &stderr)
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "no such project") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("export --project other: %v, want a usage error naming no key", err)
	}
}
