package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// env is one scenario's world: an embedded nats-server listening on TCP
// loopback (the worker connects over TCP, as in production, whether it runs
// in this process or as a child) and the chat API simulator on loopback.
type env struct {
	dir  string
	ns   *server.Server   // the server every client connects to
	more []*server.Server // the other servers of a cluster
	sim  *httptest.Server
	api  string // base URL of the simulator
	n    int
	simT []atomic.Int64 // per command index: the simulator's handling time (ns)
}

func startEnv(n int, latency time.Duration) (*env, error) {
	return startEnvOf(1, n, latency)
}

// startEnvOf is startEnv with servers NATS servers: 1, or a cluster of 3
// (each its own JetStream store, routed over loopback) where streams and
// buckets can have three replicas, as in production.
func startEnvOf(servers, n int, latency time.Duration) (*env, error) {
	dir, err := os.MkdirTemp("", "chatworker-bench-")
	if err != nil {
		return nil, err
	}
	all, err := startServers(dir, servers)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir, ns: all[0], more: all[1:], n: n, simT: make([]atomic.Int64, n)}
	sim := chatsim.New(chatsim.Config{Seed: 1, Faults: chatsim.Faults{Latency: latency}})
	// The wrapper times each request on the server side, so the latency the
	// worker adds can be told apart from the API's own time.
	e.sim = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sim.ServeHTTP(w, r)
		if i, ok := commandIndex(r.Header.Get("Idempotency-Key")); ok && i < e.n {
			e.simT[i].Store(int64(time.Since(start)))
		}
	}))
	e.api = e.sim.URL + "/chat/v1"
	return e, nil
}

// natsOptions configure the bench's NATS server, in this process or in its
// own (ServeNATS): file storage in dir, a free port on loopback.
func natsOptions(dir string) *server.Options {
	return &server.Options{
		ServerName: "bench", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, MaxPayload: 1 << 20,
	}
}

// startServers starts one server, or a cluster of servers, and waits
// until JetStream answers.
func startServers(dir string, servers int) ([]*server.Server, error) {
	if servers == 1 {
		ns, err := server.NewServer(natsOptions(dir))
		if err != nil {
			return nil, err
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			ns.Shutdown()
			return nil, errNotReady
		}
		return []*server.Server{ns}, nil
	}
	ports := make([]int, servers)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var all []*server.Server
	stop := func() {
		for _, ns := range all {
			ns.Shutdown()
		}
	}
	for i := range servers {
		o := natsOptions(filepath.Join(dir, strconv.Itoa(i)))
		o.ServerName = "bench-" + strconv.Itoa(i)
		o.Cluster = server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[i]}
		for j, p := range ports {
			if j != i {
				o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(p)})
			}
		}
		ns, err := server.NewServer(o)
		if err != nil {
			stop()
			return nil, err
		}
		go ns.Start()
		all = append(all, ns)
	}
	for _, ns := range all {
		if !ns.ReadyForConnections(10 * time.Second) {
			stop()
			return nil, errNotReady
		}
	}
	// JetStream places replicated streams once the cluster has elected its
	// meta leader, that leader knows every server, and sees each online.
	deadline := time.Now().Add(30 * time.Second)
	for !jetStreamReady(all) {
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("bench: the NATS cluster elected no JetStream leader within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := placeReplicated(all[0].ClientURL(), len(all), deadline); err != nil {
		stop()
		return nil, err
	}
	return all, nil
}

// placeReplicated creates, then deletes, a stream with replicas replicas,
// trying until deadline: JetStream refuses one until the cluster is ready.
func placeReplicated(url string, replicas int, deadline time.Time) error {
	nc, js, err := dialJS(url, "bench cluster check")
	if err != nil {
		return err
	}
	defer nc.Close()
	for {
		// Each try gets an answer or gives up within a second: a request
		// sent before the cluster has a leader may get none.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_READY", Subjects: []string{"bench.ready"}, Replicas: replicas, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "BENCH_READY")
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the NATS cluster placed no stream of %d replicas: %w", replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func jetStreamReady(all []*server.Server) bool {
	for _, ns := range all {
		if ns.JetStreamIsLeader() {
			return len(ns.JetStreamClusterPeers()) == len(all)
		}
	}
	return false
}

// dialJS connects to url under name, with a JetStream context.
func dialJS(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// retry calls try, each call given each, until it succeeds, ctx ends or
// d has passed; it returns try's last error.
func retry(ctx context.Context, d, each time.Duration, try func(context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		tctx, cancel := context.WithTimeout(ctx, each)
		err := try(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// feed hands the iterator's messages to msgs until the iterator is
// stopped, then closes msgs.
func feed(it jetstream.MessagesContext, msgs chan<- jetstream.Msg) {
	defer close(msgs)
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // a missed heartbeat: the iterator recovers
			continue
		}
		msgs <- msg
	}
}

func (e *env) close() {
	e.sim.CloseClientConnections()
	e.sim.Close()
	for _, ns := range append([]*server.Server{e.ns}, e.more...) {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	os.RemoveAll(e.dir)
}

const idPrefix = "bench-"

func commandID(i int) string { return idPrefix + strconv.Itoa(i) }

// commandIndex parses a command id, or a record's Nats-Msg-Id
// ("<id>:<sequence>"), back to the command's index.
func commandIndex(s string) (int, bool) {
	s, _, _ = strings.Cut(s, ":")
	rest, ok := strings.CutPrefix(s, idPrefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}
