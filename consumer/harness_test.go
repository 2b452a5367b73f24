package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/schematest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The HTTP client's idle connections close on their own schedule.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
	os.Exit(0)
}

// pipeline is a real worker on an embedded nats-server, executing against
// the simulator.
type pipeline struct {
	t     *testing.T
	srv   *server.Server
	js    jetstream.JetStream
	nc    *nats.Conn
	sim   *chatsim.Server
	cfg   consumer.Config
	store idempotency.Store
	// executor calls the simulator through client.
	executor *execute.Executor
	client   *chat.Client
	simURL   string
	stops    []func() // of the workers startWorker started
}

type option func(*pipeline, *chatsim.Config)

func withFaults(f chatsim.Faults) option {
	return func(_ *pipeline, c *chatsim.Config) { c.Faults = f }
}

func withRateLimit(perWindow int, window time.Duration) option {
	return func(_ *pipeline, c *chatsim.Config) { c.RatePerMinute, c.RateWindow = perWindow, window }
}

func withRetry(r consumer.RetryPolicy) option {
	return func(p *pipeline, _ *chatsim.Config) { p.cfg.Retry = r }
}

// newPipeline starts a worker executing against the simulator.
func newPipeline(t *testing.T, opts ...option) *pipeline {
	t.Helper()
	p := newBarePipeline(t, opts...)
	p.start(p.executor)
	return p
}

// newBarePipeline sets everything up but starts no worker.
func newBarePipeline(t *testing.T, opts ...option) *pipeline {
	t.Helper()
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	p := &pipeline{t: t, srv: srv, js: js, nc: nc, cfg: consumer.Config{
		Concurrency: 16,
		Logger:      zaptest.NewLogger(t),
		Retry:       consumer.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond, MaxAttempts: 20},
	}}
	simCfg := chatsim.Config{HonourIdempotencyKey: true, Seed: 1}
	for _, o := range opts {
		o(p, &simCfg)
	}
	p.sim = chatsim.New(simCfg)
	hs := httptest.NewServer(p.sim)
	t.Cleanup(hs.Close)
	p.simURL = hs.URL
	store, err := idempotency.Open(t.Context(), js, idempotency.Config{Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p.store = store
	client, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}),
		chat.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.client = client
	p.executor = &execute.Executor{Client: client, SiteToken: "s"}
	if _, err := consumer.Provision(t.Context(), js, p.cfg.Topology); err != nil {
		t.Fatal(err)
	}
	// Every record the test stored must validate against the schemas apps
	// use (runs once the worker stopped, before the server does).
	t.Cleanup(func() {
		topo := p.cfg.Topology.WithDefaults()
		schematest.Stream(t, p.js, topo.ResultsStream, schematest.Result(t))
		schematest.Stream(t, p.js, topo.DeadLettersStream, schematest.DeadLetter(t))
	})
	return p
}

// start runs a worker with exec until the test ends.
func (p *pipeline) start(exec consumer.Executor) {
	p.t.Helper()
	cons, err := consumer.Provision(p.t.Context(), p.js, p.cfg.Topology)
	if err != nil {
		p.t.Fatal(err)
	}
	w, err := consumer.New(p.js, cons, exec, p.store, p.cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			p.t.Errorf("Run: %v", err)
		}
	})
}

// publish publishes a command as an app would.
func (p *pipeline) publish(c actions.Commander) actions.Command {
	p.t.Helper()
	cmd, err := actions.Publish(p.t.Context(), p.js, c, actions.Subjects{})
	if err != nil {
		p.t.Fatal(err)
	}
	return cmd
}

// publishRaw publishes arbitrary bytes on a subject, with a message id.
func (p *pipeline) publishRaw(subject, msgID string, data []byte) {
	p.t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(nats.MsgIdHdr, msgID)
	}
	if _, err := p.js.PublishMsg(p.t.Context(), msg); err != nil {
		p.t.Fatal(err)
	}
}

// results waits until the results stream holds n records and returns them.
func (p *pipeline) results(n int) []actions.Result {
	p.t.Helper()
	var out []actions.Result
	for _, m := range p.records("CHAT_RESULTS", n) {
		var r actions.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// deadLetters waits until the dead-letter stream holds n records.
func (p *pipeline) deadLetters(n int) []actions.DeadLetter {
	p.t.Helper()
	var out []actions.DeadLetter
	for _, m := range p.records("CHAT_DLQ", n) {
		var d actions.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func (p *pipeline) records(stream string, n int) []*jetstream.RawStreamMsg {
	p.t.Helper()
	s, err := p.js.Stream(p.t.Context(), stream)
	if err != nil {
		p.t.Fatal(err)
	}
	var count uint64
	eventually(p.t, time.Minute, func() bool {
		info, err := s.Info(p.t.Context())
		if err != nil {
			return false
		}
		count = info.State.Msgs
		return count >= uint64(n)
	}, "%s holds %d records, want %d", stream, &count, n)
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); len(out) < n; seq++ {
		m, err := s.GetMsg(p.t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// settled waits until no command is left unacknowledged.
func (p *pipeline) settled() {
	p.t.Helper()
	s, err := p.js.Stream(p.t.Context(), "CHAT_COMMANDS")
	if err != nil {
		p.t.Fatal(err)
	}
	var left uint64
	eventually(p.t, time.Minute, func() bool {
		info, err := s.Info(p.t.Context())
		if err != nil {
			return false
		}
		left = info.State.Msgs
		return left == 0
	}, "%d commands left in CHAT_COMMANDS", &left)
}

// eventually polls cond until it holds or the deadline passes. The message
// arguments may be pointers, read when the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, format string, args ...any) {
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

// effectsByKey counts the simulator's effects per idempotency key.
func effectsByKey(sim *chatsim.Server) map[string]int {
	n := map[string]int{}
	for _, e := range sim.Effects() {
		n[e.IdempotencyKey]++
	}
	return n
}

// count is the number of messages in a stream now.
func (p *pipeline) count(stream string) uint64 {
	p.t.Helper()
	s, err := p.js.Stream(p.t.Context(), stream)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(p.t.Context())
	if err != nil {
		p.t.Fatal(err)
	}
	return info.State.Msgs
}

// failFirst fails the first call for one chat with a retryable error.
type failFirst struct {
	next   consumer.Executor
	chat   string
	failed atomic.Bool
}

func (f *failFirst) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	if cmd.ChatID == f.chat && f.failed.CompareAndSwap(false, true) {
		return contract.Outcome{}, fmt.Errorf("simulated outage: %w", chat.ErrRetryable)
	}
	return f.next.Execute(ctx, cmd)
}
