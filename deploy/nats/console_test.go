package nats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/console"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/project"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

// TestConsolePermissions serves `worker console` connected as the console
// user of worker-permissions.conf over a deployment the operator
// provisioned (streams, buckets, audit log, a joined replica, dead letters
// of v1 and v2 commands, a schedule), and uses every page and every action:
// each must do its job with no permission violation on the console's
// connection.
func TestConsolePermissions(t *testing.T) {
	srv := startConfServer(t)
	_, ojs := connect(t, srv, "operator", "o-pw", nil)
	seedConsole(t, ojs)

	var mu sync.Mutex
	var violations []string
	_, cjs := connect(t, srv, "console", "c-pw", func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, err.Error())
	})
	c, err := console.New(console.Config{JS: cjs, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	hc := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (int, string, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(t.Context(), method, hs.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Location")
	}

	for _, tc := range []struct{ path, want string }{
		{"/", "Dead letters, last 24 h"},
		{"/", "exhausted"},
		{"/", "replica-1"},
		{"/dlq", "v1-1"},
		{"/dlq", "v2-1"},
		{"/dlq?class=permanent", "v2-1"},
		{"/dlq/1", "the API said no to v1-1"},
		{"/schedules", "later-1"},
		{"/command?id=v1-1", "dead-lettered"},
		{"/command?id=later-1", "scheduled"},
		{"/command?id=done-1", "succeeded"},
		{"/projects", "Every project is active"},
		{"/audit", "No operator action"},
	} {
		code, body, _ := do("GET", tc.path, nil)
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, does not say %q", tc.path, code, tc.want)
		}
	}
	for _, a := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/dlq/replay", url.Values{"seq": {"1"}, "scope": {"selected"}, "rate": {"0"}}, "replayed 1 of 1"},
		{"/dlq/purge", url.Values{"class": {"permanent"}, "scope": {"all"}, "confirm": {"yes"}}, "deleted 1"},
		{"/schedules/cancel", url.Values{"id": {"later-1"}}, "cancelled 1"},
		{"/projects/pause", url.Values{"project": {"acme"}, "reason": {"provider incident"}}, "acme"},
		{"/projects/resume", url.Values{"project": {"acme"}}, "acme"},
	} {
		code, _, loc := do("POST", a.path, a.form)
		if msg, _ := url.QueryUnescape(loc); code != http.StatusSeeOther || !strings.Contains(msg, a.want) || strings.Contains(msg, "could not") {
			t.Errorf("POST %s: %d %s, want a redirect saying %q", a.path, code, msg, a.want)
		}
	}
	if code, body, _ := do("GET", "/audit", nil); code != http.StatusOK || strings.Count(body, "console") < 5 {
		t.Errorf("the audit page does not list the five actions:\n%s", body)
	}
	mu.Lock()
	if len(violations) > 0 {
		t.Errorf("the console hit errors under its permissions (add what it needs to worker-permissions.conf):\n%s", strings.Join(violations, "\n"))
	}
	mu.Unlock()
}

// TestConsoleCannot: the console user cannot delete, purge or change a
// stream or bucket, rewrite the audit log, take the worker's commands,
// forge results, dead letters, idempotency or replica records, or act as
// an app of another kind.
func TestConsoleCannot(t *testing.T) {
	srv := startConfServer(t)
	_, ojs := connect(t, srv, "operator", "o-pw", nil)
	if _, err := consumer.Provision(t.Context(), ojs, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	nc, _ := connect(t, srv, "console", "c-pw", func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	a := &tenant{t: t, nc: nc, errs: errs}
	for _, tt := range []struct{ what, subject string }{
		{"delete a stream", "$JS.API.STREAM.DELETE.CHAT_DLQ"},
		{"delete the commands", "$JS.API.STREAM.DELETE.CHAT_COMMANDS"},
		{"purge the commands", "$JS.API.STREAM.PURGE.CHAT_COMMANDS"},
		{"purge the dead letters", "$JS.API.STREAM.PURGE.CHAT_DLQ"},
		{"change a stream", "$JS.API.STREAM.UPDATE.CHAT_RESULTS"},
		{"create a stream", "$JS.API.STREAM.CREATE.MINE"},
		{"delete the project bucket", "$JS.API.STREAM.DELETE.KV_CHAT_PROJECTS"},
		{"purge the project bucket", "$JS.API.STREAM.PURGE.KV_CHAT_PROJECTS"},
		{"erase an audit entry", "$JS.API.STREAM.MSG.DELETE.CHAT_AUDIT"},
		{"purge the audit log", "$JS.API.STREAM.PURGE.CHAT_AUDIT"},
		{"delete a result", "$JS.API.STREAM.MSG.DELETE.CHAT_RESULTS"},
		{"take the worker's commands", "$JS.API.CONSUMER.MSG.NEXT.CHAT_COMMANDS.chat-worker"},
		{"a consumer of the commands", "$JS.API.CONSUMER.CREATE.CHAT_COMMANDS.thief.chat.commands.>"},
		{"an unfiltered consumer of the commands", "$JS.API.CONSUMER.CREATE.CHAT_COMMANDS.thief"},
		{"remove the worker's consumer", "$JS.API.CONSUMER.DELETE.CHAT_COMMANDS.chat-worker"},
		{"forge a result", "chat.results.send.c1"},
		{"forge a dead letter", "chat.dlq.send.c1"},
		{"schedule a command", "chat.schedules.send.c1.x"},
		{"write an idempotency record", "$KV.CHAT_IDEMPOTENCY.x"},
		{"write a replica record", "$KV.CHAT_WORKERS.x"},
	} {
		if err := nc.Publish(tt.subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		a.refused(tt.what, tt.subject)
	}
}

// seedConsole provisions as `worker provision` does and stores what a
// deployment would have: dead letters of a v1 and a v2 command, a result
// and its idempotency record, a schedule, a replica's record.
func seedConsole(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := t.Context()
	if _, err := consumer.Provision(ctx, js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Open(ctx, js, audit.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := project.Open(ctx, js, project.Config{}); err != nil {
		t.Fatal(err)
	}
	store, err := idempotency.Open(ctx, js, idempotency.Config{Owner: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := fleet.Join(ctx, js, fleet.Config{}, fleet.Member{Name: "replica-1", Concurrency: 4}, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Leave(context.Background()) })

	now := time.Now().UTC()
	for i, d := range []struct {
		id, subject, dlq string
		class            actions.Class
	}{
		{"v1-1", "chat.commands.send.chat-a", "chat.dlq.send.chat-a", contract.ClassExhausted},
		{"v2-1", "chat.commands.acme.send.chat-b", "chat.dlq.acme.send.chat-b", contract.ClassPermanent},
	} {
		cmd, _ := json.Marshal(actions.Command{ID: d.id, Type: "send", ChatID: "chat", Content: "hi"})
		rec, _ := json.Marshal(actions.DeadLetter{Command: cmd, Subject: d.subject,
			Error: actions.ErrorInfo{Class: d.class, Message: "the API said no to " + d.id}, Attempts: 3, Worker: "test/1", DeadAt: now})
		if _, err := js.Publish(ctx, d.dlq, rec, jetstream.WithMsgID(fmt.Sprintf("%s:%d", d.id, i))); err != nil {
			t.Fatal(err)
		}
	}
	done := actions.Command{ID: "done-1", Type: "send", ChatID: "chat-c", Content: "hi"}
	res, _ := json.Marshal(actions.Result{ID: done.ID, Type: done.Type, ChatID: done.ChatID, Status: "succeeded", CompletedAt: now})
	if _, err := js.Publish(ctx, "chat.results.send.chat-c", res, jetstream.WithMsgID(done.ID)); err != nil {
		t.Fatal(err)
	}
	claim, err := store.Claim(ctx, done.ID, done.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Complete(ctx, claim, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.ScheduleAt(ctx, js, actions.Note{ID: "later-1", ChatID: "chat-s", Content: "later"}, now.Add(time.Hour), actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
}
