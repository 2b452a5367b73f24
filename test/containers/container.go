package containers

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// opTimeout bounds one Docker operation (start, stop, connect, ...).
const opTimeout = 2 * time.Minute

// Network is a Docker bridge network private to one test. Containers on it
// reach each other by name (nats-1, worker-1, sim-1).
type Network struct {
	Name string
	ID   string

	mu    sync.Mutex
	names map[string]int // name prefix -> containers started with it
}

// NewNetwork creates a network that is removed when t ends.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	nw, err := tcnetwork.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	return &Network{Name: nw.Name, ID: nw.ID, names: map[string]int{}}
}

// nextName gives prefix-1, prefix-2, ... so tests can start several workers.
func (n *Network) nextName(prefix string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[prefix]++
	return fmt.Sprintf("%s-%d", prefix, n.names[prefix])
}

// Container is one running container on a Network.
type Container struct {
	// Name is the container's alias on its network (e.g. "worker-1").
	Name string
	// Network is the network the container was started on.
	Network *Network
	// C is the testcontainers handle, for anything not wrapped here.
	C testcontainers.Container
}

// request is what the start helpers have in common.
type request struct {
	image   string
	name    string
	env     map[string]string
	cmd     []string
	ports   []string
	files   []testcontainers.ContainerFile
	waitFor wait.Strategy
}

// start creates and starts a container, registering its removal (and, when
// the test failed, a dump of its log) with t.Cleanup.
func start(t testing.TB, nw *Network, r request) *Container {
	t.Helper()
	c, err := startContainer(t, nw, r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startContainer is start for other goroutines than the test's: it reports
// failure as an error, since only the test goroutine may call t.Fatal.
func startContainer(t testing.TB, nw *Network, r request) (*Container, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          r.image,
			Env:            r.env,
			Cmd:            r.cmd,
			ExposedPorts:   r.ports,
			Files:          r.files,
			Networks:       []string{nw.Name},
			NetworkAliases: map[string][]string{nw.Name: {r.name}},
			WaitingFor:     r.waitFor,
			ConfigModifier: func(c *container.Config) { c.Hostname = r.name },
		},
		Started: true,
		Logger:  tclog.TestLogger(t),
	})
	// CleanupContainer copes with a nil or half-started container.
	testcontainers.CleanupContainer(t, ctr)
	if ctr == nil {
		return nil, fmt.Errorf("start %s (%s): %w", r.name, r.image, err)
	}
	c := &Container{Name: r.name, Network: nw, C: ctr}
	// Cleanups run last-registered first: the log dump sees the container.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of the log of %s ---\n%s", c.Name, trimLog(c.logs(), 200))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("start %s (%s): %w\n%s", r.name, r.image, err, trimLog(c.logs(), 50))
	}
	return c, nil
}

// HostAddr is host:port at which the test process reaches the container's
// port (e.g. "4222/tcp"). Docker maps a new host port on every start, so ask
// again after Start.
func (c *Container) HostAddr(t testing.TB, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	host, err := c.C.Host(ctx)
	if err != nil {
		t.Fatalf("%s: host: %v", c.Name, err)
	}
	p, err := c.C.MappedPort(ctx, port)
	if err != nil {
		t.Fatalf("%s: mapped port %s: %v", c.Name, port, err)
	}
	return net.JoinHostPort(host, p.Port())
}

// Stop stops the container gracefully (SIGTERM, then SIGKILL after timeout).
func (c *Container) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.C.Stop(ctx, &timeout); err != nil {
		t.Fatalf("stop %s: %v", c.Name, err)
	}
}

// Kill stops the container with SIGKILL: a crash, with no chance to clean up.
func (c *Container) Kill(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := dockerClient(t).ContainerKill(ctx, c.C.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"})
	if err != nil {
		t.Fatalf("kill %s: %v", c.Name, err)
	}
	// Wait for the engine to see it gone, so a following Start does not race.
	c.waitState(t, func(s string) bool { return s != "running" })
}

// Start starts a stopped or killed container again and waits until it is
// ready, by the same strategy as the first start.
func (c *Container) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.C.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", c.Name, err)
	}
}

// Disconnect cuts the container off its network, for partition tests. The
// process keeps running; its peers no longer resolve or reach it.
func (c *Container) Disconnect(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := dockerClient(t).NetworkDisconnect(ctx, c.Network.ID, client.NetworkDisconnectOptions{
		Container: c.C.GetContainerID(),
		Force:     true,
	})
	if err != nil {
		t.Fatalf("disconnect %s: %v", c.Name, err)
	}
}

// Connect heals a Disconnect, under the same name.
func (c *Container) Connect(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := dockerClient(t).NetworkConnect(ctx, c.Network.ID, client.NetworkConnectOptions{
		Container:      c.C.GetContainerID(),
		EndpointConfig: &network.EndpointSettings{Aliases: []string{c.Name}},
	})
	if err != nil {
		t.Fatalf("connect %s: %v", c.Name, err)
	}
}

// Exec runs a command in the container (there is no shell in these images:
// name a binary, e.g. "/worker", "send", ...) and returns its exit code and
// combined output.
func (c *Container) Exec(t testing.TB, cmd ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	code, r, err := c.C.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, c.Name, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("exec %v in %s: read output: %v", cmd, c.Name, err)
	}
	return code, string(out)
}

// Logs returns what the container has written to stdout and stderr so far.
func (c *Container) Logs(t testing.TB) string {
	t.Helper()
	return c.logs()
}

func (c *Container) logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	r, err := c.C.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Sprintf("%s\n(log cut short: %v)", b, err)
	}
	return string(b)
}

// Running reports whether the engine sees the container running.
func (c *Container) Running(t testing.TB) bool {
	t.Helper()
	return c.state(t) == "running"
}

func (c *Container) state(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	s, err := c.C.State(ctx)
	if err != nil {
		t.Fatalf("state of %s: %v", c.Name, err)
	}
	return string(s.Status)
}

func (c *Container) waitState(t testing.TB, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for s := c.state(t); !ok(s); s = c.state(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v", c.Name, s, opTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trimLog keeps the last n lines of a log, for failure messages.
func trimLog(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
