package export_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/export"
)

// TestExportArchivedBool: against an API answering "archived": true or
// false, a run exports every conversation, each line's chat as returned.
func TestExportArchivedBool(t *testing.T) {
	e := newEnv(t, chatsim.Config{Quirks: chatsim.Quirks{ArchivedBool: true}}, 10, 2, nil)
	dir := t.TempDir()
	f, err := export.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := (&export.Exporter{Client: e.client, Sink: f, Checkpoints: f}).Run(t.Context(), export.Options{})
	if err != nil || sum.Exported != 10 {
		t.Fatalf("run: %v, %+v", err, sum)
	}
	var all []line
	for _, ls := range readDir(t, dir) {
		all = append(all, ls...)
	}
	e.checkComplete(t, all)
	archived := 0
	for _, raw := range readRaw(t, dir) {
		var l struct {
			ChatID string         `json:"chat_id"`
			Chat   map[string]any `json:"chat"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		a, ok := l.Chat["archived"].(bool)
		if !ok || l.Chat["id"] != l.ChatID || l.Chat["language"] != "en" {
			t.Errorf("%s: chat %v, want it as the API returned it", l.ChatID, l.Chat)
		}
		if a {
			archived++
		}
	}
	if archived != 2 {
		t.Errorf("%d chats exported as archived, want 2", archived)
	}
}

// TestExportPageRetry: a page is retried after a 429 (as its Retry-After
// says) and after a 5xx; a configuration failure is not retried.
func TestExportPageRetry(t *testing.T) {
	var listCalls, feedCalls atomic.Int32
	var denyFeed atomic.Bool
	e := newEnv(t, chatsim.Config{}, 5, 2, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/chats") && listCalls.Add(1) == 1:
				w.Header().Set("Retry-After", "0.05")
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(`{"code":4002,"message":"Error 4002: rate limit exceeded"}`))
				return
			case strings.HasSuffix(r.URL.Path, "/feed"):
				n := feedCalls.Add(1)
				if denyFeed.Load() {
					w.WriteHeader(http.StatusForbidden)
					w.Write([]byte(`{"code":4001,"message":"Error 4001: not authorised"}`))
					return
				}
				if n == 1 {
					w.WriteHeader(http.StatusBadGateway)
					w.Write([]byte(`<html>bad gateway</html>`))
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	f, err := export.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum, err := (&export.Exporter{Client: e.client, Sink: f, Checkpoints: f, Concurrency: 1}).Run(t.Context(), export.Options{})
	if err != nil || sum.Exported != 5 {
		t.Fatalf("run: %v, %+v", err, sum)
	}
	// Two listings (see listAll), the first page of the first tried twice;
	// five feeds, the first tried twice.
	if listCalls.Load() != 3 || feedCalls.Load() != 6 {
		t.Errorf("%d listing calls, %d feed calls; want 3 and 6", listCalls.Load(), feedCalls.Load())
	}

	denyFeed.Store(true)
	feedCalls.Store(0)
	g, err := export.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ex := &export.Exporter{Client: e.client, Sink: g}
	if _, err := ex.ExportChat(t.Context(), "", chatID(0)); !errors.Is(err, chat.ErrConfig) || feedCalls.Load() != 1 {
		t.Errorf("ExportChat with a key not authorised: %v after %d feed calls; want a configuration error after 1", err, feedCalls.Load())
	}
}

// readRaw returns every line of every export file in dir, undecoded.
func readRaw(t *testing.T, dir string) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	files, err := filepath.Glob(filepath.Join(dir, "export-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for l := range bytes.Lines(b) {
			if l = bytes.TrimSpace(l); len(l) > 0 {
				out = append(out, json.RawMessage(l))
			}
		}
	}
	return out
}
