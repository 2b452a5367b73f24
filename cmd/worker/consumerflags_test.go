package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/internal/natstest"
)

// TestProvisionKeepsTheWorkersConsumerSettings: worker provision takes the
// consumer's settings from the same variables as worker run, so a provision
// Job reading the workers' ConfigMap does not put the consumer back to the
// defaults (it did: MaxAckPending, AckWait and MaxDeliver until a worker
// next started).
func TestProvisionKeepsTheWorkersConsumerSettings(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	t.Setenv("WORKER_CONCURRENCY", "1000")
	t.Setenv("WORKER_ACK_WAIT", "45s")
	t.Setenv("WORKER_MAX_DELIVER", "12")
	if err := run(t.Context(), []string{"provision", "--nats-url", srv.ClientURL()}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(t.Context(), "CHAT_COMMANDS", consumer.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.MaxAckPending != consumer.MaxAckPendingFor(1000) || cfg.AckWait != 45*time.Second || cfg.MaxDeliver != 12 {
		t.Errorf("consumer after provision: MaxAckPending %d, AckWait %v, MaxDeliver %d; want %d, 45s, 12",
			cfg.MaxAckPending, cfg.AckWait, cfg.MaxDeliver, consumer.MaxAckPendingFor(1000))
	}
	// Bad values are refused before anything is changed.
	var stderr bytes.Buffer
	err = run(t.Context(), []string{"provision", "--nats-url", srv.ClientURL(), "--max-deliver", "1"}, nil, &bytes.Buffer{}, &stderr)
	var usage usageError
	if !errors.As(err, &usage) {
		t.Errorf("--max-deliver 1: %v, want a usage error", err)
	}
}

// Every delivery claims its id unless --claimless-first-delivery says
// otherwise: the first delivery without a claim measured slower on the
// benchmark's workload, on one NATS server and on a cluster of three
// (docs/performance.md, "First deliveries without a claim, measured again").
func TestEveryDeliveryClaimsByDefault(t *testing.T) {
	if f := defaultWorkerFlags(); f.claimless {
		t.Error("worker run skips the claim of first deliveries by default")
	}
}
