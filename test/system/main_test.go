// Package system runs the worker and NATS as containers built from this
// repository, the way they are deployed, and checks behaviour that only shows
// across processes: node loss, restarts, partitions.
package system

import (
	"os"
	"testing"

	"github.com/chatworker/worker/test/containers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) {
	// Ryuk off (its image cannot be pulled; t.Cleanup removes everything)
	// and mapped ports on the loopback, before testcontainers reads its
	// configuration.
	containers.ConfigureEnv()
	os.Exit(m.Run())
}

// connect connects to NATS for the test's own publishing and reading, and
// closes the connection when the test ends.
func connect(t *testing.T, urls string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
