package nats_test

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/export"
	"github.com/nats-io/nats.go"
)

// TestExportPermissions runs the nightly export as the export CronJob does
// (deploy/k8s/base/export-cronjob.yaml: the worker's NATS credentials,
// --bucket CHAT_EXPORTS, --checkpoint-bucket CHAT_EXPORT_CHECKPOINTS) under
// worker-permissions.conf: the first run creates both buckets and exports
// every conversation, the second finds the checkpoints and exports only what
// changed, and an export on demand stored twice replaces its object. Any
// permission violation fails the test.
func TestExportPermissions(t *testing.T) {
	srv := startConfServer(t)
	var mu sync.Mutex
	var violations []string
	_, js := connect(t, srv, "worker", "w-pw", func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, err.Error())
	})
	failed := func(step string, err error) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s under the shipped permissions: %v (errors: %q)", step, err, violations)
	}

	sim := chatsim.New(chatsim.Config{})
	sim.Seed(5, 3)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	client, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)

	ctx := t.Context()
	sink, err := export.OpenObjectStore(ctx, js, "CHAT_EXPORTS", 1)
	if err != nil {
		failed("opening the Object Store", err)
	}
	cps, err := export.OpenKV(ctx, js, "CHAT_EXPORT_CHECKPOINTS", 1)
	if err != nil {
		failed("opening the checkpoints", err)
	}
	ex := &export.Exporter{Client: client, Sink: sink, Checkpoints: cps}
	sum, err := ex.Run(ctx, export.Options{})
	if err != nil {
		failed("the first run", err)
	}
	if sum.Exported != 5 {
		t.Errorf("first run exported %d conversations, want 5", sum.Exported)
	}

	if _, _, err := client.SendMessage(ctx, "seed-0002", chat.SendMessageRequest{Content: "one more"}); err != nil {
		t.Fatal(err)
	}
	sum, err = ex.Run(ctx, export.Options{})
	if err != nil {
		failed("the second run", err)
	}
	if sum.Exported != 1 || sum.Unchanged != 4 {
		t.Errorf("second run: %d exported, %d unchanged; want 1 and 4", sum.Exported, sum.Unchanged)
	}

	for range 2 {
		if _, err := ex.ExportChat(ctx, "", "seed-0003"); err != nil {
			failed("an export on demand", err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("export hit errors under the worker's permissions (add what it needs to worker-permissions.conf):\n%s", strings.Join(violations, "\n"))
	}
}
