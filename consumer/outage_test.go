package consumer_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
)

// The modes of the way to the API that outageProxy plays.
const (
	apiUp        = iota
	api503       // the API's own 503 with its error JSON
	gateway502   // a proxy's HTML 502 page
	refused      // nothing listens: connections are refused
	oneChatFails // 503 for the chat "unlucky" alone
)

// outageProxy stands between the worker and the simulator and fails as its
// mode says, for every call (commands and the project's checks alike).
type outageProxy struct {
	mode  atomic.Int32
	mu    sync.Mutex
	srv   *http.Server
	ln    net.Listener
	addr  string
	proxy *httputil.ReverseProxy
}

func newOutageProxy(t *testing.T, target string) *outageProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &outageProxy{proxy: httputil.NewSingleHostReverseProxy(u)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.setMode(apiUp); p.mu.Lock(); defer p.mu.Unlock(); p.srv.Close() })
	return p
}

func (p *outageProxy) serve(ln net.Listener) {
	p.ln = ln
	p.srv = &http.Server{Handler: http.HandlerFunc(p.handle)}
	go p.srv.Serve(ln)
}

func (p *outageProxy) handle(w http.ResponseWriter, r *http.Request) {
	switch p.mode.Load() {
	case api503:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"code":5000,"message":"Error 5000: service unavailable"}`)
		return
	case gateway502:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, `<html><body><h1>502 Bad Gateway</h1></body></html>`)
		return
	case oneChatFails:
		if strings.Contains(r.URL.Path, "/chats/unlucky/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"code":5000,"message":"Error 5000: service unavailable"}`)
			return
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// setMode switches the mode; refused closes the listener, and leaving it
// listens again on the same address.
func (p *outageProxy) setMode(m int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.mode.Swap(m)
	switch {
	case m == refused && old != refused:
		p.srv.Close()
	case m != refused && old == refused:
		for {
			ln, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.serve(ln)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// outageHarness is a harness whose worker reaches the simulator through an
// outageProxy, with the project states shared in NATS.
func outageHarness(t *testing.T) (*workertest.Harness, *outageProxy, *project.Store, *execute.Executor) {
	t.Helper()
	h := workertest.New(t, workertest.NoWorker(),
		// A small budget: each command's retries are over in well under a
		// second, so every outage below outlasts it many times.
		workertest.WithRetry(consumer.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond, MaxAttempts: 4}))
	p := newOutageProxy(t, h.SimURL)
	client, err := chat.New(chat.WithBaseURL("http://"+p.addr+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}),
		chat.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	exec := &execute.Executor{Client: client, SiteToken: "s"}
	states, err := project.Open(t.Context(), h.JS, project.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h.Config.Projects = exec
	h.Config.ProjectStates = states
	return h, p, states, exec
}

// TestProviderOutagesDeadLetterNothing: the API answers 503 (its own), then
// a gateway's HTML 502 pages, then refuses connections, each for well over
// the retry budget's span while commands are published throughout. No
// command is dead-lettered; the project pauses and resumes by itself; each
// command has its effect exactly once afterwards.
func TestProviderOutagesDeadLetterNothing(t *testing.T) {
	h, proxy, states, exec := outageHarness(t)
	w := h.Start(exec)
	// Ready: the default project's first check (an outage at start is
	// another test's) is done.
	workertest.Eventually(t, 10*time.Second, func() bool { return w.NotReady() == "" }, "the worker never became ready")
	n := 0
	for _, mode := range []int32{api503, gateway502, refused} {
		proxy.setMode(mode)
		for range 8 {
			n++
			h.Publish(actions.Note{ID: fmt.Sprintf("n-%d", n), ChatID: fmt.Sprintf("c%d", n%3), Content: "x"})
			time.Sleep(100 * time.Millisecond) // published throughout the outage
		}
		workertest.Eventually(t, 10*time.Second, func() bool {
			st, err := states.Get(t.Context(), "default")
			return err == nil && st.Name() == "paused-outage"
		}, "mode %d: the project was not paused for an outage", mode)
		if dl := h.Count("CHAT_DLQ"); dl != 0 {
			t.Fatalf("mode %d: %d dead letters during an outage", mode, dl)
		}
		proxy.setMode(apiUp)
		h.Results(n)
		h.Settled()
	}
	if dl := h.Count("CHAT_DLQ"); dl != 0 {
		t.Fatalf("%d dead letters after the outages", dl)
	}
	for key, effects := range h.EffectsByKey() {
		if effects != 1 {
			t.Errorf("%s had %d effects, want 1", key, effects)
		}
	}
	if st, _ := states.Get(t.Context(), "default"); !st.Active() {
		t.Errorf("the project is still %s", st)
	}
}

// TestACommandFailingAloneIsStillDeadLettered: one chat's calls fail with
// 503 while the project's other commands succeed: that command spends its
// budget and becomes an exhausted dead letter, and the project never
// pauses.
func TestACommandFailingAloneIsStillDeadLettered(t *testing.T) {
	h, proxy, states, exec := outageHarness(t)
	proxy.setMode(oneChatFails)
	h.Start(exec)
	h.Publish(actions.Note{ID: "unlucky-1", ChatID: "unlucky", Content: "x"})
	for i := range 6 {
		h.Publish(actions.Note{ID: fmt.Sprintf("ok-%d", i), ChatID: fmt.Sprintf("c%d", i), Content: "x"})
	}
	dead := h.DeadLetters(1)
	if dead[0].Error.Class != "exhausted" || dead[0].Attempts != 4 {
		t.Fatalf("dead letter: class %s after %d attempts, want exhausted after 4", dead[0].Error.Class, dead[0].Attempts)
	}
	h.Results(6)
	if st, _ := states.Get(t.Context(), "default"); !st.Active() {
		t.Fatalf("one command's failures paused the project: %s", st)
	}
}

// TestAnOperatorsPauseHoldsOnEveryReplica: paused through the shared states
// (as `worker projects pause` does), no replica of three makes a call; the
// pause survives the replicas' restart; a resume lets every command run.
func TestAnOperatorsPauseHoldsOnEveryReplica(t *testing.T) {
	h, _, states, exec := outageHarness(t)
	var workers []*consumer.Worker
	start := func() []func() {
		var stops []func()
		workers = nil
		for i := range 3 {
			cfg := h.Config
			cfg.Name = fmt.Sprintf("replica-%d", i)
			w, stop := h.StartStoppable(exec, cfg)
			workers = append(workers, w)
			stops = append(stops, stop)
		}
		return stops
	}
	// Each replica says on /readyz that the default project is paused once
	// it has seen the pause.
	allSeePause := func() {
		t.Helper()
		for i, w := range workers {
			workertest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(w.NotReady(), "paused by an operator") },
				"replica %d never saw the operator's pause", i)
		}
	}
	stops := start()
	h.Publish(actions.Note{ID: "before", ChatID: "c0", Content: "x"})
	h.Results(1)

	if _, err := states.PauseByOperator(t.Context(), "default", "provider incident", "alice"); err != nil {
		t.Fatal(err)
	}
	allSeePause()
	calls := len(h.Sim.Effects())
	for i := range 12 {
		h.Publish(actions.Note{ID: fmt.Sprintf("held-%d", i), ChatID: fmt.Sprintf("c%d", i%4), Content: "x"})
	}
	time.Sleep(1500 * time.Millisecond) // a window in which any call would show
	if got := len(h.Sim.Effects()); got != calls {
		t.Fatalf("%d calls made while the project was paused", got-calls)
	}

	// A restart of every replica keeps the pause.
	for _, stop := range stops {
		stop()
	}
	stops = start()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	allSeePause()
	time.Sleep(1500 * time.Millisecond) // a window in which any call would show
	if got := len(h.Sim.Effects()); got != calls {
		t.Fatalf("%d calls made by restarted replicas while the project was paused", got-calls)
	}
	if dl := h.Count("CHAT_DLQ"); dl != 0 {
		t.Fatalf("%d dead letters while paused", dl)
	}

	if _, _, err := states.ResumeByOperator(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	h.Results(13)
	h.Settled()
}
