package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Recognisable credentials. The default project's token never travels in a
// command, so it must never appear anywhere either; the other projects'
// tokens are named by commands themselves and so are not secrets here.
const (
	secretKey      = "sk-LIVE-SECRET-1234567890"
	secretSite     = "GSN-SECRET-SITE-42"
	secretKey2     = "sk-PROJ2-SECRET-0987654321"
	site2          = "GSN-PROJ2-77"
	secretRejected = "sk-REJECTED-SECRET-555"
	siteRejected   = "GSN-REJECTED-9"
)

var secrets = []string{secretKey, secretSite, secretKey2, secretRejected}

// TestSecretsNeverLeak runs the whole flow with recognisable credentials and
// scans every log line (debug level), result, dead letter, metric and error
// message for them: zero hits. It also checks the project allow-list: an
// allowed site_token uses its own key, an unknown one is a permanent dead
// letter that says why.
func TestSecretsNeverLeak(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	sim := chatsim.New(chatsim.Config{Credentials: map[string][]string{secretKey: {secretSite}, secretKey2: {site2}}})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	projects := filepath.Join(t.TempDir(), "projects")
	if err := os.WriteFile(projects, []byte("# site=key\n"+site2+"="+secretKey2+"\n"+siteRejected+"="+secretRejected+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOSQUARED_API_KEY", secretKey)
	t.Setenv("GOSQUARED_SITE_TOKEN", secretSite)
	t.Setenv("GOSQUARED_PROJECTS_FILE", projects)

	var seen []string // everything the worker said or stored
	var help bytes.Buffer
	if err := run(t.Context(), []string{"run", "-h"}, nil, &help, &help); err != nil && !errors.Is(err, errHelp) {
		t.Fatalf("run -h: %v", err)
	}
	seen = append(seen, help.String())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	// One writer for both streams, read through its lock: the worker's
	// goroutines write while the test reads.
	logs := &syncWriter{w: &bytes.Buffer{}}
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", "127.0.0.1:0",
			"--log-level", "debug", "--log-format", "json", "--retry-max-attempts", "2", "--retry-initial-interval", "1ms", "--retry-max-interval", "2ms"},
			nil, logs, logs)
	}()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			<-done
		}
	})

	cmds := []contract.Commander{
		contract.Send{ID: "ok", ChatID: "c1", Content: "hello"},
		contract.Note{ID: "ok-project2", ChatID: "c2", Content: "note", SiteToken: site2},
		contract.Send{ID: "not-found", ChatID: "missing:1", Content: "x"},
		contract.Archive{ID: "rejected-key", ChatID: "c3", SiteToken: siteRejected},
		contract.Send{ID: "wrong-site-for-key", ChatID: "c4", Content: "x", SiteToken: "GSN-NOT-CONFIGURED-1"},
	}
	eventuallyOK(t, func() error { _, err := js.Stream(t.Context(), "CHAT_COMMANDS"); return err })
	for _, c := range cmds {
		if _, err := actions.Publish(t.Context(), js, c, contract.Subjects{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(t.Context(), "chat.commands.send.c5", []byte(`{"id":"bad","type":"send","chat_id":"c5","contnet":"x"}`)); err != nil {
		t.Fatal(err)
	}

	results, rh := streamRecords(t, js, "CHAT_RESULTS", 2)
	dead, dh := streamRecords(t, js, "CHAT_DLQ", 3) // the rejected key pauses its project instead
	seen = append(append(append(append(seen, results...), rh...), dead...), dh...)
	classOf := map[string]string{}
	for _, d := range dead {
		var dl contract.DeadLetter
		if err := json.Unmarshal([]byte(d), &dl); err != nil {
			t.Fatal(err)
		}
		cmd, _ := contract.Decode(contract.Subjects{}, dl.Subject, dl.Body())
		classOf[cmd.ID] = string(dl.Error.Class) + ": " + dl.Error.Message
		seen = append(seen, dl.Error.Message)
	}
	for id, want := range map[string]string{"not-found": "permanent", "wrong-site-for-key": "not configured", "": "invalid"} {
		if !strings.Contains(classOf[id], want) {
			t.Errorf("dead letter of %q: %q, want it to say %q", id, classOf[id], want)
		}
	}
	var usedSites []string
	for _, e := range sim.Effects() {
		usedSites = append(usedSites, e.ChatID)
	}
	if strings.Join(usedSites, ",") != "c1,c2" && strings.Join(usedSites, ",") != "c2,c1" {
		t.Errorf("effects on %v, want c1 (default project) and c2 (project 2, with its own key)", usedSites)
	}

	addr := regexp.MustCompile(`"HTTP endpoints listening".*?"addr":"([^"]+)"`).FindStringSubmatch(logs.String())
	if addr == nil {
		t.Fatalf("no HTTP address in the logs:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "chatworker_commands_dead_lettered_total") {
		t.Errorf("metrics lack the dead-letter counter")
	}
	eventuallyOK(t, func() error {
		resp, err := http.Get("http://" + addr[1] + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if m, _ := io.ReadAll(resp.Body); !strings.Contains(string(m), `chatworker_project_paused{project="gsn-rejected-9"} 1`) {
			return errors.New("the project whose key the API rejects is not shown paused")
		}
		return nil
	})
	seen = append(seen, string(metrics))

	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			seen = append(seen, err.Error())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	seen = append(seen, logs.String())

	// Configuration mistakes name the problem, not the values.
	t.Setenv("GOSQUARED_PROJECTS_FILE", "")
	for _, bad := range []string{site2 + "=" + secretKey2 + "," + secretRejected, secretSite + "=" + secretKey2, site2 + "=" + secretKey2 + "," + site2 + "=" + secretRejected} {
		t.Setenv("GOSQUARED_PROJECTS", bad)
		var out bytes.Buffer
		err := run(t.Context(), []string{"run", "--nats-url", srv.ClientURL(), "--http-addr", ""}, nil, &out, &out)
		if err == nil {
			t.Errorf("GOSQUARED_PROJECTS entry error not reported")
			continue
		}
		seen = append(seen, err.Error(), out.String())
	}

	for _, s := range secrets {
		for _, text := range seen {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("secret %q appears in: ...%s...", s, text[max(0, i-200):min(len(text), i+len(s)+50)])
			}
		}
	}
	if len(logs.String()) == 0 || !strings.Contains(logs.String(), `"level":"debug"`) {
		t.Error("no debug logs were scanned")
	}
}

// streamRecords waits for n records in stream and returns their bodies and,
// apart, their headers.
func streamRecords(t *testing.T, js jetstream.JetStream, stream string, n int) (out, headers []string) {
	t.Helper()
	eventuallyOK(t, func() error {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			return err
		}
		info, err := s.Info(t.Context())
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(n) {
			return errors.New(stream + " not complete yet")
		}
		out, headers = out[:0], headers[:0]
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(t.Context(), seq)
			if err != nil {
				return err
			}
			out = append(out, string(m.Data))
			headers = append(headers, headerText(m.Header))
		}
		return nil
	})
	return out, headers
}

func headerText(h nats.Header) string {
	var b strings.Builder
	for k, vs := range h {
		b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	return b.String()
}
