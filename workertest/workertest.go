package workertest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/schematest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

// Harness is a worker on an embedded nats-server, executing against the
// Chat API simulator. Its fields are the parts a test may use or change;
// Config changes take effect for workers started after them.
type Harness struct {
	T      testing.TB
	Server *server.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
	// Sim is the simulated Chat API, served at SimURL.
	Sim    *chatsim.Server
	SimURL string
	// Client calls the simulator; Executor executes commands with it.
	Client   *chat.Client
	Executor *execute.Executor
	Store    idempotency.Store
	Config   consumer.Config

	noWorker bool
}

// An Option changes the harness before anything starts: its Config, or sim,
// the simulator's configuration.
type Option func(h *Harness, sim *chatsim.Config)

// WithFaults makes the simulator misbehave.
func WithFaults(f chatsim.Faults) Option {
	return func(_ *Harness, c *chatsim.Config) { c.Faults = f }
}

// WithRateLimit makes the simulator allow perWindow calls per window.
func WithRateLimit(perWindow int, window time.Duration) Option {
	return func(_ *Harness, c *chatsim.Config) { c.RatePerMinute, c.RateWindow = perWindow, window }
}

// WithRetry sets the worker's retry policy.
func WithRetry(r consumer.RetryPolicy) Option {
	return func(h *Harness, _ *chatsim.Config) { h.Config.Retry = r }
}

// WithConfig changes the worker's configuration.
func WithConfig(f func(*consumer.Config)) Option {
	return func(h *Harness, _ *chatsim.Config) { f(&h.Config) }
}

// NoWorker sets everything up but starts no worker: the test changes what
// it needs, then calls Start.
func NoWorker() Option {
	return func(h *Harness, _ *chatsim.Config) { h.noWorker = true }
}

// New starts an embedded nats-server, provisions the streams, opens the
// idempotency store, starts the simulator and, unless NoWorker is given, a
// worker executing against it. Everything stops when the test ends; then
// every record stored is checked against the schemas apps use.
//
// The worker's defaults suit tests: 16 API calls at once, a test logger, and
// retries a millisecond apart (up to 20 attempts).
func New(t testing.TB, opts ...Option) *Harness {
	t.Helper()
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	h := &Harness{T: t, Server: srv, NC: nc, JS: js, Config: consumer.Config{
		Concurrency: 16,
		Logger:      zaptest.NewLogger(t),
		Retry:       consumer.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond, MaxAttempts: 20},
	}}
	simCfg := chatsim.Config{HonourIdempotencyKey: true, Seed: 1}
	for _, o := range opts {
		o(h, &simCfg)
	}
	h.Sim = chatsim.New(simCfg)
	hs := httptest.NewServer(h.Sim)
	t.Cleanup(hs.Close)
	h.SimURL = hs.URL
	store, err := idempotency.Open(t.Context(), js, idempotency.Config{Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h.Store = store
	client, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}),
		chat.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h.Client = client
	h.Executor = &execute.Executor{Client: client, SiteToken: "s"}
	if _, err := consumer.Provision(t.Context(), js, h.Config.Topology); err != nil {
		t.Fatal(err)
	}
	// Every record the test stored must validate against the schemas apps
	// use (runs once the workers stopped, before the server does).
	t.Cleanup(func() {
		topo := h.Config.Topology.WithDefaults()
		schematest.Stream(t, h.JS, topo.ResultsStream, schematest.Result(t))
		schematest.Stream(t, h.JS, topo.DeadLettersStream, schematest.DeadLetter(t))
	})
	if !h.noWorker {
		h.Start(h.Executor)
	}
	return h
}

// Start runs a worker with exec and the harness's Config until the test
// ends, and returns it.
func (h *Harness) Start(exec consumer.Executor) *consumer.Worker {
	h.T.Helper()
	w, stop := h.StartStoppable(exec, h.Config)
	h.T.Cleanup(stop)
	return w
}

// StartStoppable runs a worker with exec and cfg; stop cancels its Run, waits
// for it to return and reports a failed Run. stop may be called more than
// once.
func (h *Harness) StartStoppable(exec consumer.Executor, cfg consumer.Config) (w *consumer.Worker, stop func()) {
	h.T.Helper()
	cons, err := consumer.Provision(h.T.Context(), h.JS, cfg.Topology)
	if err != nil {
		h.T.Fatal(err)
	}
	w, err = consumer.New(h.JS, cons, exec, h.Store, cfg)
	if err != nil {
		h.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var stopped bool
	return w, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.T.Errorf("Run: %v", err)
		}
	}
}

// Publish publishes a command as an app would.
func (h *Harness) Publish(c actions.Commander) actions.Command {
	h.T.Helper()
	cmd, err := actions.Publish(h.T.Context(), h.JS, c, actions.Subjects{})
	if err != nil {
		h.T.Fatal(err)
	}
	return cmd
}

// PublishRaw publishes arbitrary bytes on a subject, with a message id
// unless msgID is "".
func (h *Harness) PublishRaw(subject, msgID string, data []byte) {
	h.T.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(nats.MsgIdHdr, msgID)
	}
	if _, err := h.JS.PublishMsg(h.T.Context(), msg); err != nil {
		h.T.Fatal(err)
	}
}

// Results waits until the results stream holds n records and returns them.
func (h *Harness) Results(n int) []actions.Result {
	h.T.Helper()
	var out []actions.Result
	for _, m := range h.Records(h.Config.Topology.WithDefaults().ResultsStream, n) {
		var r actions.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			h.T.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// DeadLetters waits until the dead-letter stream holds n records and
// returns them.
func (h *Harness) DeadLetters(n int) []actions.DeadLetter {
	h.T.Helper()
	var out []actions.DeadLetter
	for _, m := range h.Records(h.Config.Topology.WithDefaults().DeadLettersStream, n) {
		var d actions.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			h.T.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// Records waits until stream holds n messages and returns the first n.
func (h *Harness) Records(stream string, n int) []*jetstream.RawStreamMsg {
	h.T.Helper()
	s, err := h.JS.Stream(h.T.Context(), stream)
	if err != nil {
		h.T.Fatal(err)
	}
	var count uint64
	Eventually(h.T, time.Minute, func() bool {
		info, err := s.Info(h.T.Context())
		if err != nil {
			return false
		}
		count = info.State.Msgs
		return count >= uint64(n)
	}, "%s holds %d records, want %d", stream, &count, n)
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); len(out) < n; seq++ {
		m, err := s.GetMsg(h.T.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.T.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// Settled waits until no command is left in the commands stream.
func (h *Harness) Settled() {
	h.T.Helper()
	stream := h.Config.Topology.WithDefaults().CommandsStream
	s, err := h.JS.Stream(h.T.Context(), stream)
	if err != nil {
		h.T.Fatal(err)
	}
	var left uint64
	Eventually(h.T, time.Minute, func() bool {
		info, err := s.Info(h.T.Context())
		if err != nil {
			return false
		}
		left = info.State.Msgs
		return left == 0
	}, "%d commands left in %s", &left, stream)
}

// Count is the number of messages in a stream now.
func (h *Harness) Count(stream string) uint64 {
	h.T.Helper()
	s, err := h.JS.Stream(h.T.Context(), stream)
	if err != nil {
		h.T.Fatal(err)
	}
	info, err := s.Info(h.T.Context())
	if err != nil {
		h.T.Fatal(err)
	}
	return info.State.Msgs
}

// EffectsByKey counts the simulator's effects per idempotency key.
func (h *Harness) EffectsByKey() map[string]int {
	n := map[string]int{}
	for _, e := range h.Sim.Effects() {
		n[e.IdempotencyKey]++
	}
	return n
}

// Eventually polls cond until it holds, failing the test when within has
// passed first. The message's arguments may be pointers to an int or a
// uint64, read when the time is up, so the message says what was last seen.
func Eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				switch v := a.(type) {
				case *uint64:
					args[i] = *v
				case *int:
					args[i] = *v
				}
			}
			t.Fatalf("timed out: "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
