package containers

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// ConfigureEnv sets what testcontainers reads from the environment, unless
// the caller set it already. testcontainers reads its configuration once, so
// it must run before any call into testcontainers: every function here calls
// it; call it from TestMain when a test uses testcontainers directly.
func ConfigureEnv() { configureEnv() }

var configureEnv = sync.OnceFunc(func() {
	// Ryuk's image would have to be pulled; t.Cleanup removes everything.
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	// Mapped ports: inside a container (/.dockerenv) testcontainers assumes
	// a sibling engine and aims at the default gateway. Here the engine on
	// the local socket shares our network namespace, and the gateway is not
	// ours to send traffic to: mapped ports are on the loopback. Which socket
	// testcontainers settles on is only known once its client exists (it
	// passes over a DOCKER_HOST it cannot use), so ask the client.
	if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); ok {
		return
	}
	cli, err := testcontainers.NewDockerClientWithOpts(context.Background())
	if err != nil {
		return // provider() reports it
	}
	defer cli.Close()
	if strings.HasPrefix(cli.DaemonHost(), "unix://") {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
})

// provider is shared by the whole test binary: creating one pings the daemon.
var provider = sync.OnceValues(func() (*testcontainers.DockerProvider, error) {
	configureEnv()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		return nil, err
	}
	return p, nil
})

// RequireDocker skips the test when no Docker engine answers, and fails it
// when CI=true: under CI a missing Docker is a broken machine, not a reason
// to report green.
func RequireDocker(t testing.TB) {
	t.Helper()
	if _, err := provider(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required under CI=true: %v", err)
		}
		t.Skipf("no Docker engine answers (set DOCKER_HOST or start dockerd): %v", err)
	}
}

// dockerClient gives the calls testcontainers does not wrap: kill, network
// connect/disconnect, image inspect/remove.
func dockerClient(t testing.TB) client.APIClient {
	t.Helper()
	p, err := provider()
	if err != nil {
		t.Fatalf("docker: %v", err)
	}
	return p.Client()
}
