package bench

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/nats-io/nats-server/v2/server"
)

// env is one scenario's world: an embedded nats-server listening on TCP
// loopback (the worker connects over TCP, as in production, whether it runs
// in this process or as a child) and the chat API simulator on loopback.
type env struct {
	dir  string
	ns   *server.Server
	sim  *httptest.Server
	api  string // base URL of the simulator
	n    int
	simT []atomic.Int64 // per command index: the simulator's handling time (ns)
}

func startEnv(n int, latency time.Duration) (*env, error) {
	dir, err := os.MkdirTemp("", "chatworker-bench-")
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(natsOptions(dir))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		os.RemoveAll(dir)
		return nil, errNotReady
	}
	e := &env{dir: dir, ns: ns, n: n, simT: make([]atomic.Int64, n)}
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

func (e *env) close() {
	e.sim.CloseClientConnections()
	e.sim.Close()
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
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
