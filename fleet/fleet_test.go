package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/workertest"
	"go.uber.org/zap"
)

func TestReplicasSeeEachOtherJoinAndLeave(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := t.Context()
	cfg := Config{Heartbeat: 50 * time.Millisecond}
	join := func(name string) *Fleet {
		t.Helper()
		f, err := Join(ctx, js, cfg, Member{Name: name, Version: "test", Concurrency: 8}, func() int { return 3 }, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := join("pod-a/1")
	if a.Live() != 1 || a.Share() != 1 {
		t.Fatalf("alone: live %d, share %v", a.Live(), a.Share())
	}
	b, c := join("pod-b/1"), join("pod.c/1")
	for _, f := range []*Fleet{a, b, c} {
		workertest.Eventually(t, 10*time.Second, func() bool { return f.Live() == 3 }, "three replicas seen by %s", f.me.Name)
	}
	if s := a.Share(); s != 1.0/3 {
		t.Fatalf("share of three = %v", s)
	}
	ms := a.Members()
	if len(ms) != 3 || ms[0].Name != "pod-a/1" || ms[0].InFlight != 3 || ms[0].Concurrency != 8 {
		t.Fatalf("members = %+v", ms)
	}
	listed, err := List(ctx, js, "")
	if err != nil || len(listed) != 3 {
		t.Fatalf("List = %+v, %v", listed, err)
	}

	// A replica that leaves is gone at once.
	b.Leave(ctx)
	workertest.Eventually(t, 10*time.Second, func() bool { return a.Live() == 2 && c.Live() == 2 }, "b's leave seen")

	// A replica that stops writing (crashed, cut off) is gone after a few
	// heartbeats.
	c.cancel()
	<-c.done
	workertest.Eventually(t, 10*time.Second, func() bool { return a.Live() == 1 }, "c's silence seen")
	a.Leave(ctx)

	// A replica joining later does not count records of replicas long gone.
	time.Sleep(4 * cfg.Heartbeat)
	d := join("pod-d/1")
	defer d.Leave(context.Background())
	if n := d.Live(); n != 1 {
		t.Fatalf("a replica joining after the others went counts %d", n)
	}
}

// TestBudgetUseAddsUpTheReplicas: each replica writes what it spent of each
// project's budget; the fleet's use is their sum, against the limit the
// newest record heard from the API.
func TestBudgetUseAddsUpTheReplicas(t *testing.T) {
	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := t.Context()
	join := func(name string, b map[string]chat.Budget) *Fleet {
		t.Helper()
		cfg := Config{Heartbeat: 50 * time.Millisecond, Budgets: func() map[string]chat.Budget { return b }}
		f, err := Join(ctx, js, cfg, Member{Name: name}, nil, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Leave(context.Background()) })
		return f
	}
	join("a", map[string]chat.Budget{"default": {Known: true, Limit: 600, Remaining: 100, Used: 200}, "shop": {Used: 1}})
	b := join("b", map[string]chat.Budget{"default": {Known: true, Limit: 600, Remaining: 80, Used: 250}})
	workertest.Eventually(t, 10*time.Second, func() bool { return len(b.Members()) == 2 && b.Members()[0].Budgets != nil }, "both records with budgets")
	use := BudgetUse(b.Members())
	if d := use["default"]; d.Used != 450 || !d.Known || d.Limit != 600 {
		t.Fatalf("default project's use = %+v, want 450 of 600 used", d)
	}
	if s := use["shop"]; s.Used != 1 || s.Known {
		t.Fatalf("shop's use = %+v, want 1 used, limit unknown", s)
	}
}
