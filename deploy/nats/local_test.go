package nats_test

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestLocalConfig: the development configuration docs/deploy.md shows
// parses with nats-server's own loader, listens on loopback only (client
// and monitoring ports) and turns JetStream on with a store directory; a
// server started from it serves JetStream. The one-line variant in the
// page parses to the same.
func TestLocalConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("nats-server.local.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Host != "127.0.0.1" || opts.HTTPHost != "127.0.0.1" || opts.HTTPPort == 0 {
		t.Errorf("listens on %q (monitoring %q:%d), want loopback only", opts.Host, opts.HTTPHost, opts.HTTPPort)
	}
	if !opts.JetStream || opts.StoreDir == "" || strings.HasPrefix(opts.StoreDir, "/data") {
		t.Errorf("JetStream %v in %q, want it on, in a directory of its own", opts.JetStream, opts.StoreDir)
	}
	opts.Port, opts.HTTPPort, opts.StoreDir, opts.NoLog, opts.NoSigs = -1, 0, t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	if !srv.JetStreamEnabled() {
		t.Error("JetStream is off")
	}

	doc, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	const oneLine = "nats-server -js -a 127.0.0.1 -sd ./nats-data"
	if !strings.Contains(string(doc), "deploy/nats/nats-server.local.conf") || !strings.Contains(string(doc), oneLine) {
		t.Fatalf("docs/deploy.md does not show the local configuration and %q", oneLine)
	}
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cli, err := server.ConfigureOptions(fs, strings.Fields(oneLine)[1:], func() {}, func() {}, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if cli.Host != "127.0.0.1" || !cli.JetStream || cli.StoreDir != "./nats-data" {
		t.Errorf("%q: host %q, JetStream %v in %q", oneLine, cli.Host, cli.JetStream, cli.StoreDir)
	}
}
