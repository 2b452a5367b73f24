package natstest

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long a test waits for the server to listen. It is a
// failure deadline, not a wait: ReadyForConnections returns as soon as it can.
const readyTimeout = 10 * time.Second

// started remembers the options each running server was built with, because
// nats-server does not export them and RestartServer needs them. Entries are
// removed by t.Cleanup.
var started sync.Map // *server.Server -> *server.Options

// RunServer starts an embedded nats-server with JetStream on a random local
// port, storing data in t.TempDir(). opts may adjust the options before the
// server starts. The server is shut down with t.Cleanup.
func RunServer(t testing.TB, opts ...func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	for _, opt := range opts {
		opt(o)
	}
	return startServer(t, o)
}

// RestartServer shuts s down and starts a new server with the same options on
// the same port and store directory, so clients reconnect and JetStream data
// survives. Use it to test behaviour while NATS goes away mid-run.
func RestartServer(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	return StopServer(t, s)()
}

// StopServer shuts s down and returns a function that starts it again with
// the same options, port and store directory: the time between the two is
// an outage.
func StopServer(t testing.TB, s *server.Server) (start func() *server.Server) {
	t.Helper()
	v, ok := started.Load(s)
	if !ok {
		t.Fatalf("natstest: StopServer: server was not started by RunServer")
	}
	o := v.(*server.Options).Clone()
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("natstest: StopServer: server is not listening")
	}
	o.Port = addr.Port // the old one may have been random (-1)
	s.Shutdown()
	s.WaitForShutdown()
	started.Delete(s)
	return func() *server.Server {
		t.Helper()
		return startServer(t, o)
	}
}

// Connect returns a connection and a JetStream context for s, closed with
// t.Cleanup. The connection retries for ever at a short interval so it
// survives RestartServer.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

func startServer(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		t.Fatalf("natstest: server not ready within %s", readyTimeout)
	}
	started.Store(s, o)
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		started.Delete(s)
	})
	return s
}
