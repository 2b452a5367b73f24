package project_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go/jetstream"
)

func open(t *testing.T) (*project.Store, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	s, err := project.Open(t.Context(), js, project.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func TestAProjectWithNoStateIsActive(t *testing.T) {
	s, _ := open(t)
	st, err := s.Get(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Active() || st.Name() != "active" || st.String() != "active" {
		t.Fatalf("state = %+v (%s), want active", st, st)
	}
	list, err := s.List(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v; want nothing", list, err)
	}
}

func TestOperatorPauseHoldsUntilResumed(t *testing.T) {
	s, js := open(t)
	ctx := t.Context()
	st, err := s.PauseByOperator(ctx, "shop", "  provider incident  ", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.Active() || st.Name() != "paused-operator" || st.Operator.Reason != "provider incident" || st.Operator.By != "alice" {
		t.Fatalf("after pause: %+v", st)
	}
	since := st.Operator.Since

	// Pausing again changes the reason, not the time.
	st, err = s.PauseByOperator(ctx, "shop", "customer's request", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Operator.Since.Equal(since) || st.Operator.Reason != "customer's request" {
		t.Fatalf("after a second pause: %+v, want since %v", st.Operator, since)
	}

	// Another client (a CLI, another replica) binding the bucket sees it.
	other, err := project.Bind(ctx, js, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.Get(ctx, "shop")
	if err != nil || got.Name() != "paused-operator" {
		t.Fatalf("Get from another client = %+v, %v", got, err)
	}
	if !strings.Contains(got.String(), "paused by an operator") || !strings.Contains(got.String(), "customer's request") {
		t.Fatalf("String() = %q", got.String())
	}

	st, was, err := s.ResumeByOperator(ctx, "shop")
	if err != nil || !was || !st.Active() {
		t.Fatalf("resume = %+v, %v, %v; want active after a pause", st, was, err)
	}
	if _, was, err = s.ResumeByOperator(ctx, "shop"); err != nil || was {
		t.Fatalf("resume of an active project: was paused %v, err %v", was, err)
	}
}

func TestOnlyTheFirstReplicaStoresAHealthPause(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	const replicas = 8
	var wg sync.WaitGroup
	wins := make(chan string, replicas)
	stored := make([]project.Pause, replicas)
	for i := range replicas {
		wg.Go(func() {
			me := "worker-" + string(rune('a'+i))
			p, won, err := s.PauseHealth(ctx, "shop", project.CauseOutage, "503 from the Chat API", me, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if won {
				wins <- me
			}
			stored[i] = p
		})
	}
	wg.Wait()
	close(wins)
	var winners []string
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	for i, p := range stored {
		if p.Prober != winners[0] {
			t.Errorf("replica %d was told the prober is %q, want %q", i, p.Prober, winners[0])
		}
	}

	// An operator's resume does not end an outage, and the outage's end
	// does not end an operator's pause.
	if _, err := s.PauseByOperator(ctx, "shop", "hold", "alice"); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := s.ResumeByOperator(ctx, "shop"); st.Name() != "paused-outage" {
		t.Fatalf("after the operator's resume: %s, want paused-outage", st.Name())
	}
	if _, err := s.PauseByOperator(ctx, "shop", "hold", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.ResumeHealth(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Get(ctx, "shop"); st.Name() != "paused-operator" {
		t.Fatalf("after the outage's end: %s, want paused-operator", st.Name())
	}
}

func TestTheProbeIsTakenOverWhenItsTurnEnds(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	if _, won, err := s.PauseHealth(ctx, "shop", project.CauseOutage, "connection refused", "a", 200*time.Millisecond); err != nil || !won {
		t.Fatalf("pause: won %v, %v", won, err)
	}
	if ok, err := s.TakeProbe(ctx, "shop", "b", time.Minute); err != nil || ok {
		t.Fatalf("b took a's live turn: %v, %v", ok, err)
	}
	if ok, err := s.TakeProbe(ctx, "shop", "a", 200*time.Millisecond); err != nil || !ok {
		t.Fatalf("a could not renew its turn: %v, %v", ok, err)
	}
	workertest.Eventually(t, 10*time.Second, func() bool {
		ok, err := s.TakeProbe(ctx, "shop", "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}, "b never took over a's ended turn")
	if ok, _ := s.TakeProbe(ctx, "shop", "a", time.Minute); ok {
		t.Fatal("a took the turn back while b holds it")
	}
	if err := s.ResumeHealth(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TakeProbe(ctx, "shop", "b", time.Minute); ok || err != nil {
		t.Fatalf("probe of an active project: %v, %v", ok, err)
	}
}

func TestViewFollowsEveryChange(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	// A pause stored before the view starts is in it at once: a worker
	// started while a project is paused never runs its commands.
	if _, err := s.PauseByOperator(ctx, "before", "kept across restarts", "alice"); err != nil {
		t.Fatal(err)
	}
	changes := make(chan project.State, 16)
	v, err := s.Watch(ctx, func(st project.State) { changes <- st })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	if v.State("before").Name() != "paused-operator" {
		t.Fatalf("view at start: %+v", v.State("before"))
	}
	next := func(want string) {
		t.Helper()
		select {
		case st := <-changes:
			if st.Name() != want {
				t.Fatalf("change to %s, want %s", st.Name(), want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change to %s seen", want)
		}
	}
	if _, _, err := s.PauseHealth(ctx, "shop", project.CauseConfiguration, "401 from the Chat API", "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	next("paused-configuration")
	if v.State("shop").Name() != "paused-configuration" || len(v.Paused()) != 2 {
		t.Fatalf("view: %+v, paused %d", v.State("shop"), len(v.Paused()))
	}
	if err := s.ResumeHealth(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	next("active")
	if !v.State("shop").Active() {
		t.Fatalf("view after resume: %+v", v.State("shop"))
	}
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	s, js := open(t)
	ctx := t.Context()
	for _, name := range []string{"", "a.b", "a b", "*", ">", strings.Repeat("x", 65)} {
		if _, err := s.PauseByOperator(ctx, name, "r", "me"); !errors.Is(err, project.ErrInvalidName) {
			t.Errorf("pause %q: %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := s.PauseByOperator(ctx, "shop", "   ", "me"); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("a pause without a reason: %v", err)
	}
	long := strings.Repeat("é", 1000)
	st, err := s.PauseByOperator(ctx, "shop", long, "me")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Operator.Reason); n > 510 {
		t.Errorf("a long reason is stored with %d bytes", n)
	}
	if _, err := project.Bind(ctx, js, "NO_SUCH_BUCKET"); !errors.Is(err, project.ErrNoBucket) {
		t.Errorf("Bind of a missing bucket: %v, want ErrNoBucket", err)
	}
}

// Two replicas run probers; the API is down, then back: exactly one replica
// checks at a time, and the first passing check resumes the project for
// both. An operator's pause is never checked.
func TestProbersResumeAProjectOnceItsCheckPasses(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	var (
		mu     sync.Mutex
		up     bool
		checks = map[string]int{}
	)
	check := func(me string) func(context.Context, string) error {
		return func(_ context.Context, p string) error {
			mu.Lock()
			defer mu.Unlock()
			checks[me+" "+p]++
			if !up {
				return errors.New("503 Service Unavailable")
			}
			return nil
		}
	}
	changes := make(chan project.State, 16)
	for _, me := range []string{"w1", "w2"} {
		v, err := s.Watch(ctx, func(st project.State) {
			if me == "w1" {
				changes <- st
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Stop)
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		pr := &project.Prober{Store: s, View: v, Me: me, Check: check(me), Min: 20 * time.Millisecond, Max: 40 * time.Millisecond, Log: zap.NewNop()}
		go func() { defer close(done); pr.Run(pctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	if _, err := s.PauseByOperator(ctx, "held", "customer's request", "alice"); err != nil {
		t.Fatal(err)
	}
	<-changes
	if _, _, err := s.PauseHealth(ctx, "shop", project.CauseOutage, "503 from the Chat API", "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if st := <-changes; st.Name() != "paused-outage" {
		t.Fatalf("state %s", st.Name())
	}
	// Let several checks fail.
	workertest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return checks["w1 shop"]+checks["w2 shop"] >= 3
	}, "the paused project is not checked")
	mu.Lock()
	up = true
	mu.Unlock()
	for st := range changes {
		if st.Project == "shop" {
			if !st.Active() {
				t.Fatalf("shop became %s", st.Name())
			}
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if checks["w2 shop"] > 0 {
		t.Errorf("w2 checked w1's project while w1 held the turn: %v", checks)
	}
	if checks["w1 held"]+checks["w2 held"] > 0 {
		t.Errorf("an operator's pause was checked: %v", checks)
	}
	if st, _ := s.Get(ctx, "held"); st.Name() != "paused-operator" {
		t.Errorf("the operator's pause became %s", st.Name())
	}
}
