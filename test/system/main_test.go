// Package system runs the worker and NATS as containers built from this
// repository, the way they are deployed, and checks behaviour that only shows
// across processes: node loss, restarts, partitions.
package system

import (
	"os"
	"testing"

	"github.com/chatworker/worker/test/containers"
)

func TestMain(m *testing.M) {
	// Ryuk off (its image cannot be pulled; t.Cleanup removes everything)
	// and mapped ports on the loopback, before testcontainers reads its
	// configuration.
	containers.ConfigureEnv()
	os.Exit(m.Run())
}
