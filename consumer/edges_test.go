package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
)

// Guarantees at the edges operators meet first: paused projects, store
// outages, rate budgets.

// startWorker runs a worker with cfg until the test ends and returns it.
func (p *pipeline) startWorker(exec consumer.Executor, cfg consumer.Config) *consumer.Worker {
	p.T.Helper()
	w, stop := p.StartStoppable(exec, cfg)
	p.T.Cleanup(stop)
	p.stops = append(p.stops, stop)
	return w
}

// refuseWrites makes a stream refuse new messages, as a store that is down
// would, by moving its subjects elsewhere: publishes to it then find no
// stream. It returns the function that restores it.
func (p *pipeline) refuseWrites(stream string) func() {
	p.T.Helper()
	s, err := p.JS.Stream(p.T.Context(), stream)
	if err != nil {
		p.T.Fatal(err)
	}
	info, err := s.Info(p.T.Context())
	if err != nil {
		p.T.Fatal(err)
	}
	cfg := info.Config
	off := cfg
	off.Subjects = []string{"refusing-writes." + stream}
	if _, err := p.JS.UpdateStream(p.T.Context(), off); err != nil {
		p.T.Fatal(err)
	}
	return func() {
		p.T.Helper()
		if _, err := p.JS.UpdateStream(p.T.Context(), cfg); err != nil {
			p.T.Fatal(err)
		}
	}
}

// downStore is the real store with an outage switch: while down, every
// write fails at once, as the store did (a stream that refuses
// writes through NATS makes the client retry each publish for half a
// second first, which only slows the test down).
type downStore struct {
	idempotency.Store
	down atomic.Bool
}

var errStoreDown = errors.New("idempotency: write refused (outage injected by the test)")

func (s *downStore) Claim(ctx context.Context, id, hash string) (*idempotency.Claim, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.Claim(ctx, id, hash)
}

func (s *downStore) Complete(ctx context.Context, c *idempotency.Claim, out contract.Outcome) (idempotency.Record, error) {
	if s.down.Load() {
		return idempotency.Record{}, errStoreDown
	}
	return s.Store.Complete(ctx, c, out)
}

func (s *downStore) Release(ctx context.Context, c *idempotency.Claim) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.Store.Release(ctx, c)
}

// keySet is a rotatable credentials source, as secret files are.
type keySet struct {
	mu       sync.Mutex
	def      chat.Credentials
	projects map[string]chat.Credentials
	reloads  int
}

// Lookup takes a project's name: the default one is contract.DefaultProject,
// the others are named by their site tokens.
func (k *keySet) Lookup(name string) (chat.Credentials, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if name == contract.DefaultProject {
		return k.def, true
	}
	c, ok := k.projects[name]
	return c, ok
}

func (k *keySet) Named(site string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if site == "" || site == k.def.SiteToken {
		return contract.DefaultProject, true
	}
	_, ok := k.projects[site]
	return site, ok
}

func (k *keySet) Names() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string{contract.DefaultProject}, slices.Sorted(maps.Keys(k.projects))...)
}

func (k *keySet) Reload() error {
	k.mu.Lock()
	k.reloads++
	k.mu.Unlock()
	return nil
}

func (k *keySet) setDefaultKey(key string) {
	k.mu.Lock()
	k.def.APIKey = key
	k.mu.Unlock()
}

// projectEvents records the per-project metrics.
type projectEvents struct {
	mu      sync.Mutex
	changes map[string][]bool // pause state changes, in order
	waits   map[string]int
}

func newProjectEvents() *projectEvents {
	return &projectEvents{changes: map[string][]bool{}, waits: map[string]int{}}
}

func (e *projectEvents) SetProjectPaused(project string, paused bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.changes[project] = append(e.changes[project], paused)
}

func (e *projectEvents) ObserveProjectRateLimitWait(project string, _ time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.waits[project]++
}

func (e *projectEvents) pauses(project string) []bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bool(nil), e.changes[project]...)
}

// TestMisconfigurationPausesInsteadOfDeadLettering: a wrong key and a wrong
// base URL dead-letter nothing; the project pauses (the worker is not
// ready, and says why), and once the right key is in place (rotated, no
// restart) or the right URL (a restart), every command is done once.
func TestMisconfigurationPausesInsteadOfDeadLettering(t *testing.T) {
	tests := []struct {
		name string
		// broken returns the executor of the worker and the step that
		// breaks its configuration once the worker is ready (nil: broken
		// from the start).
		broken func(p *pipeline, keys *keySet) (*execute.Executor, func())
		// fix puts the right configuration in place; true when that needs
		// a restart.
		fix   func(keys *keySet) bool
		cause string
	}{
		{"key revoked while running, then the right key rotated in", func(p *pipeline, keys *keySet) (*execute.Executor, func()) {
			return p.Executor, func() { keys.setDefaultKey("revoked") }
		}, func(keys *keySet) bool { keys.setDefaultKey("k"); return false }, "401"},
		{"wrong key at start, then the right key rotated in", func(p *pipeline, keys *keySet) (*execute.Executor, func()) {
			keys.setDefaultKey("wrong")
			return p.Executor, nil
		}, func(keys *keySet) bool { keys.setDefaultKey("k"); return false }, "401"},
		{"wrong base URL, then the right one", func(p *pipeline, keys *keySet) (*execute.Executor, func()) {
			c, err := chat.New(chat.WithBaseURL(p.SimURL+"/not/the/api"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}))
			if err != nil {
				t.Fatal(err)
			}
			return &execute.Executor{Client: c, SiteToken: "s", Keys: keys}, nil
		}, func(*keySet) bool { return true }, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBarePipeline(t, withCredentials(map[string][]string{"k": {"s"}}))
			keys := &keySet{def: chat.Credentials{APIKey: "k", SiteToken: "s"}}
			p.Executor.Keys = keys
			exec, breakIt := tt.broken(p, keys)
			events := newProjectEvents()
			cfg := p.Config
			cfg.Projects, cfg.ProjectMetrics = exec, events
			w := p.startWorker(exec, cfg)
			if breakIt != nil {
				workertest.Eventually(t, 30*time.Second, func() bool { return w.NotReady() == "" }, "the worker never became ready")
				breakIt()
			}

			const n = 20
			for i := range n {
				p.Publish(actions.Send{ChatID: fmt.Sprint("chat-", i%5), Content: "x"})
			}
			var why string
			workertest.Eventually(t, 30*time.Second, func() bool { why = w.NotReady(); return strings.Contains(why, "paused") },
				"the worker never said the default project is paused")
			if !strings.Contains(why, tt.cause) || strings.Contains(why, "api_key=") {
				t.Errorf("not ready because %q; want the cause (%s), never the credentials", why, tt.cause)
			}
			// Paused: the commands wait in the stream (only the checks
			// reach the API, one a second at first).
			workertest.Eventually(t, 30*time.Second, func() bool { return p.Count("CHAT_COMMANDS") == n }, "commands left the stream while paused")
			if got := p.Count("CHAT_DLQ"); got != 0 {
				t.Fatalf("%d dead letters while paused, want none", got)
			}

			if restart := tt.fix(keys); restart {
				p.stopAll()
				cfg.Projects = p.Executor
				w = p.startWorker(p.Executor, cfg)
			}
			res := p.Results(n)
			p.Settled()
			if got := p.Count("CHAT_DLQ"); got != 0 {
				t.Errorf("%d dead letters, want none", got)
			}
			for _, r := range res {
				if r.Status != contract.StatusSucceeded || r.Attempts != 1 {
					t.Errorf("result %s: %s after %d attempts, want succeeded after 1 (a refused call spends nothing)", r.ID, r.Status, r.Attempts)
				}
			}
			for key, k := range p.EffectsByKey() {
				if k != 1 {
					t.Errorf("command %s took effect %d times", key, k)
				}
			}
			if why := w.NotReady(); why != "" {
				t.Errorf("still not ready: %s", why)
			}
			if got := fmt.Sprint(events.pauses("default")); got != "[false true false]" {
				t.Errorf("pause states set for the default project = %s, want [false true false]: the series at start, then one per change", got)
			}
			if keys.reloads == 0 {
				t.Error("the paused project was checked without reading its credentials again")
			}
		})
	}
}

// TestStoreOutageDeadLettersNothing: the idempotency store refuses writes
// while each command is delivered many times (a limit on deliveries would
// dead-letter them), then comes back: no dead letters, every command
// exactly once.
func TestStoreOutageDeadLettersNothing(t *testing.T) {
	p := newBarePipeline(t)
	store := &downStore{Store: p.Store}
	store.down.Store(true)
	p.Store = store
	restore := func() { store.down.Store(false) }
	p.Start(p.Executor)
	const n = 40
	for i := range n {
		p.Publish(actions.Note{ChatID: fmt.Sprint("chat-", i), Content: "x"})
	}
	// The outage lasts 12 s, and until each command was delivered several
	// times: long enough that a backstop counting deliveries (100, 1 ms
	// apart at the test's retry pace) would have given up.
	cons, err := p.JS.Consumer(t.Context(), "CHAT_COMMANDS", "chat-worker")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	workertest.Eventually(t, time.Minute, func() bool {
		if p.Count("CHAT_DLQ") != 0 {
			t.Fatal("a command was dead-lettered during the store's outage")
		}
		info, err := cons.Info(t.Context())
		return err == nil && info.Delivered.Consumer >= 5*n && time.Since(start) > 12*time.Second
	}, "commands were not delivered again during the outage")
	if info, err := cons.Info(t.Context()); err == nil {
		t.Logf("%d deliveries of %d commands during the %v outage", info.Delivered.Consumer, n, time.Since(start).Round(time.Millisecond))
	}
	if got := p.Sim.Stats().Requests; got != 0 {
		t.Fatalf("%d API calls while no command could be claimed", got)
	}
	restore()
	res := p.Results(n)
	p.Settled()
	if got := p.Count("CHAT_DLQ"); got != 0 {
		t.Errorf("%d dead letters, want none", got)
	}
	ids := map[string]int{}
	for _, r := range res {
		ids[r.ID]++
		if r.Status != contract.StatusSucceeded {
			t.Errorf("result %s: %s", r.ID, r.Status)
		}
	}
	if len(ids) != n || len(res) != n {
		t.Errorf("%d results for %d ids, want %d each once", len(res), len(ids), n)
	}
	for key, k := range p.EffectsByKey() {
		if k != 1 {
			t.Errorf("command %s took effect %d times", key, k)
		}
	}
}

// TestFloodedProjectDoesNotHoldUpAnother: two projects, each with its own
// key and budget (25 calls a second, scaled down from the API's 750 a
// minute). Project A publishes 400 commands, then project B 10. B's
// commands are done while most of A's backlog still waits: B waits for its
// own budget, not for A's. The bound: A's commands handed back to wait
// for their budget stay pending for the consumer, so with a MaxAckPending
// below A's backlog the server delivers B's commands only once A's
// undelivered backlog ahead of them is gone (docs/failures.md).
func TestFloodedProjectDoesNotHoldUpAnother(t *testing.T) {
	const nA, nB = 400, 10
	tests := []struct {
		name          string
		maxAckPending int
		// ok judges how many of A's commands were done when B's were.
		ok func(aDone int) bool
	}{
		{"MaxAckPending above the backlog", 1000, func(aDone int) bool { return aDone <= nA/2 }},
		{"MaxAckPending below the backlog (the bound)", 100, func(aDone int) bool { return aDone >= nA-100 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kb": {"sb"}}), workertest.WithRateLimit(25, time.Second))
			client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
			if err != nil {
				t.Fatal(err)
			}
			exec := &execute.Executor{Client: client, SiteToken: "sa", Projects: map[string]chat.Credentials{"sb": {APIKey: "kb", SiteToken: "sb"}}}
			events := newProjectEvents()
			cfg := p.Config
			cfg.Projects, cfg.ProjectMetrics = exec, events
			cfg.Topology.MaxAckPending = tt.maxAckPending
			p.startWorker(exec, cfg)

			for i := range nA {
				p.Publish(actions.Note{ChatID: fmt.Sprint("a-", i%50), Content: "x"})
			}
			start := time.Now()
			for i := range nB {
				p.Publish(actions.Note{ChatID: fmt.Sprint("b-", i), Content: "x", SiteToken: "sb"})
			}
			aDone := waitProjectB(t, p, nB)
			t.Logf("MaxAckPending %d: project B's %d commands done %v after their publish; project A had %d of %d done then",
				tt.maxAckPending, nB, time.Since(start).Round(time.Millisecond), aDone, nA)
			if !tt.ok(aDone) {
				t.Errorf("B finished when %d of A's %d commands were done", aDone, nA)
			}
			events.mu.Lock()
			waitsA := events.waits["default"]
			events.mu.Unlock()
			if waitsA == 0 {
				t.Error("no rate-budget wait recorded for project A")
			}
		})
	}
}

func withCredentials(c map[string][]string) workertest.Option {
	return func(_ *workertest.Harness, s *chatsim.Config) { s.Credentials = c }
}

// stopAll stops the workers startWorker started.
func (p *pipeline) stopAll() {
	for _, stop := range p.stops {
		stop()
	}
	p.stops = nil
}

// A booking in a project's rate budget that no API call uses (here an
// export on a worker without an export target, refused before any call)
// must be given back. Were it the project's first, it holds the key's one
// probe call while its budget is unknown, and no later command of the
// project could ever book a call.
func TestUnusedRateBookingIsGivenBack(t *testing.T) {
	p := newBarePipeline(t, withCredentials(map[string][]string{"ka": {"sa"}, "kb": {"sb"}}))
	client, err := chat.New(chat.WithBaseURL(p.SimURL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "ka", SiteToken: "sa"}))
	if err != nil {
		t.Fatal(err)
	}
	exec := &execute.Executor{Client: client, SiteToken: "sa", Projects: map[string]chat.Credentials{"sb": {APIKey: "kb", SiteToken: "sb"}}}
	cfg := p.Config
	cfg.Projects = exec
	p.startWorker(exec, cfg)

	p.Publish(actions.Export{ChatID: "b-export", SiteToken: "sb"}) // project sb's first command: its budget is unknown
	if d := p.DeadLetters(1)[0]; d.Error.Class != contract.ClassPermanent {
		t.Fatalf("the export: %+v, want a permanent dead letter (no export target)", d.Error)
	}
	p.Publish(actions.Note{ChatID: "b-note", Content: "x", SiteToken: "sb"})
	var done int
	workertest.Eventually(t, 30*time.Second, func() bool {
		done = len(p.Sim.Effects())
		return done == 1
	}, "project sb's note was not made (%d effects): its key's probe call is still held", &done)
}
