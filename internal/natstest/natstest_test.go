package natstest_test

import (
	"time"

	"testing"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRestartServerKeepsDataAndPort(t *testing.T) {
	s := natstest.RunServer(t)
	nc, js := natstest.Connect(t, s)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()

	s2 := natstest.RestartServer(t, s)
	if got := s2.ClientURL(); got != url {
		t.Fatalf("restarted on %s, want %s", got, url)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil { // reconnects
		t.Fatalf("flush after restart: %v", err)
	}
	e, err := kv.Get(t.Context(), "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if string(e.Value()) != "v" {
		t.Fatalf("value = %q, want v", e.Value())
	}
}
