package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go/wait"
)

// NATS ports inside the containers.
const (
	ClientPort  = "4222/tcp"
	MonitorPort = "8222/tcp"
)

// Cluster is a set of JetStream nodes on one network.
type Cluster struct {
	Network *Network
	Nodes   []*Node
}

// Node is one nats-server container.
type Node struct {
	*Container
}

// ClientURL is the node's client URL from the test process (a mapped port on
// the Docker host). It changes when the node is restarted.
func (n *Node) ClientURL(t testing.TB) string {
	t.Helper()
	return "nats://" + n.HostAddr(t, ClientPort)
}

// InternalURL is the node's client URL from containers on the network.
func (n *Node) InternalURL() string { return "nats://" + n.Name + ":4222" }

// MonitorURL is the base URL of the node's HTTP monitoring, from the host.
func (n *Node) MonitorURL(t testing.TB) string {
	t.Helper()
	return "http://" + n.HostAddr(t, MonitorPort)
}

// ClientURLs lists every running node's host URL, comma-separated, ready for
// nats.Connect.
func (c *Cluster) ClientURLs(t testing.TB) string {
	t.Helper()
	var urls []string
	for _, n := range c.Nodes {
		if n.Running(t) {
			urls = append(urls, n.ClientURL(t))
		}
	}
	return strings.Join(urls, ",")
}

// InternalURLs lists every node's URL for containers on the network
// (NATS_URL for a worker container).
func (c *Cluster) InternalURLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.InternalURL()
	}
	return strings.Join(urls, ",")
}

// Node returns the node with the given name (as a server reports it in
// stream cluster info, e.g. "nats-2"), or fails the test.
func (c *Cluster) Node(t testing.TB, name string) *Node {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node named %q", name)
	return nil
}

// StartNATSCluster starts n JetStream nodes (1, or 3 for a cluster that
// survives the loss of one) on a new network, named nats-1..nats-n, and waits
// until every node reports JetStream healthy, which for a cluster means a
// meta leader has been elected.
func StartNATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n != 1 && n != 3 {
		t.Fatalf("StartNATSCluster: n is %d; use 1 or 3 (an even count cannot outvote a lost node)", n)
	}
	img := NATSImage(t)
	began := time.Now()
	nw := NewNetwork(t)

	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("nats://nats-%d:6222", i+1)
	}
	reqs := make([]request, n)
	for i := range reqs {
		r := request{
			image: img,
			name:  nw.nextName("nats"),
			ports: []string{ClientPort, MonitorPort},
			// A node of a cluster is "healthy" only once it has a meta leader,
			// which takes a quorum: nodes starting one by one would wait on
			// each other, so wait here for the server alone, then for the
			// cluster below.
			waitFor: wait.ForHTTP("/healthz?js-enabled-only=true").WithPort(MonitorPort).
				WithStartupTimeout(time.Minute),
		}
		if n > 1 {
			r.cmd = []string{"--config", "/etc/nats/cluster.conf"}
			r.env = map[string]string{
				"NATS_SERVER_NAME":  r.name,
				"NATS_CLUSTER_NAME": "chatworker",
				"NATS_ROUTES":       "[" + strings.Join(routes, ", ") + "]",
			}
		}
		reqs[i] = r
	}

	// Start the nodes concurrently: on 2 cores this roughly halves the time.
	c := &Cluster{Network: nw, Nodes: make([]*Node, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			var ctr *Container
			ctr, errs[i] = startContainer(t, nw, r)
			c.Nodes[i] = &Node{Container: ctr}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	c.WaitHealthy(t)
	t.Logf("%d-node NATS cluster healthy in %v", n, time.Since(began).Round(time.Millisecond))
	return c
}

// WaitHealthy waits until every running node answers /healthz with 200:
// JetStream enabled, a meta leader known and its streams current. Call it
// after restarting a node before asserting on the whole cluster.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range c.Nodes {
		if !n.Running(t) {
			continue
		}
		url := n.MonitorURL(t) + "/healthz"
		for {
			status, body, err := httpGet(url)
			if err == nil && status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not healthy: status %d, %s, err %v", n.Name, status, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func httpGet(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(b), nil
}
