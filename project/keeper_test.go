package project_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
)

var errDown = errors.New("503 Service Unavailable")

func isDown(err error) bool { return errors.Is(err, errDown) }

// Two replicas' keepers: what one replica's calls saw pauses the project for
// both; the first passing check resumes it for both.
func TestKeepersShareWhatTheyDecide(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	var up atomic.Bool
	check := func(context.Context, string) error {
		if up.Load() {
			return nil
		}
		return errDown
	}
	start := func(me string) *project.Keeper {
		t.Helper()
		k, err := project.StartKeeper(ctx, s, project.KeeperConfig{Me: me, Check: check, ProbeMin: 20 * time.Millisecond, ProbeMax: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Stop)
		return k
	}
	a, b := start("a"), start("b")

	// One command failing again and again while others are answered: no pause.
	for range 5 {
		if a.Unavailable(ctx, "shop", "lonely", errDown) {
			t.Fatal("one command's failures paused the project")
		}
		a.Answered("shop")
	}
	// Three commands failing together: an outage, for both replicas.
	a.Unavailable(ctx, "shop", "c1", errDown)
	a.Unavailable(ctx, "shop", "c2", errDown)
	if !a.Unavailable(ctx, "shop", "c3", errDown) {
		t.Fatal("three commands failing together did not pause the project")
	}
	workertest.Eventually(t, 10*time.Second, func() bool { return b.State("shop").Name() == "paused-outage" }, "b sees the outage")
	// While paused, every failure says so.
	if !b.Unavailable(ctx, "shop", "c4", errDown) {
		t.Fatal("a command of a paused project was not told so")
	}
	up.Store(true)
	workertest.Eventually(t, 10*time.Second, func() bool { return a.State("shop").Active() && b.State("shop").Active() }, "the project resumes for both")

	// The budget guard: a spent command of a project whose check fails is
	// not dead-lettered; of a project whose check passes, it is.
	if b.Confirm(ctx, "shop", isDown) {
		t.Fatal("Confirm said down while the check passes")
	}
	up.Store(false)
	if !b.Confirm(ctx, "other", isDown) {
		t.Fatal("Confirm said up while the check fails")
	}
	workertest.Eventually(t, 10*time.Second, func() bool { return a.State("other").Name() == "paused-outage" }, "a sees the confirmed outage")

	b.PauseForConfiguration(ctx, "keyless", errors.New("401 Unauthorized"))
	workertest.Eventually(t, 10*time.Second, func() bool { return a.State("keyless").Name() == "paused-configuration" }, "a sees the configuration pause")
}
