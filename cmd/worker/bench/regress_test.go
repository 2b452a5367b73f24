package bench_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/cmd/worker/bench"
)

// A regression run measures each round's minimal loop, old and new worker,
// and reports every round as it ends; the table shows the ratios.
func TestRegress(t *testing.T) {
	bin := regressBinary(t)
	var reported []bench.RegressRound
	res, err := bench.Regress(t.Context(), bench.RegressOptions{Old: bin, New: bin, Commands: 300, Chats: 5, Concurrency: 8, Rounds: 2},
		func(r bench.RegressRound) { reported = append(reported, r) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || len(reported) != 2 {
		t.Fatalf("%d rounds, %d reported; want 2", len(res.Rounds), len(reported))
	}
	for i, r := range res.Rounds {
		if r.Round != i+1 || r.Limit <= 0 || r.Minimal <= 0 || r.Floor <= 0 || r.FloorCPU <= 0 || r.MinimalCPU <= 0 || r.Old <= 0 || r.New <= 0 || r.OldCPU <= 0 || r.NewCPU <= 0 || r.OldServerCPU <= 0 || r.NewServerCPU <= 0 {
			t.Errorf("round %d: a figure is missing: %+v", i+1, r)
		}
	}
	var b bytes.Buffer
	bench.WriteRegressTable(&b, res)
	if !strings.Contains(b.String(), "| 2 | ") || !strings.Contains(b.String(), "| median |") {
		t.Errorf("table lacks a round or the medians:\n%s", b.String())
	}
}

// On a cluster of three servers every loop and worker runs on streams and
// buckets replicated three times (each worker with --replicas 3).
func TestRegressOnACluster(t *testing.T) {
	bin := regressBinary(t)
	res, err := bench.Regress(t.Context(), bench.RegressOptions{Old: bin, New: bin, Commands: 200, Chats: 5, Concurrency: 8, Rounds: 1, Replicas: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Rounds[0]; r.Limit <= 0 || r.Minimal <= 0 || r.Floor <= 0 || r.Old <= 0 || r.New <= 0 {
		t.Errorf("a figure is missing: %+v", r)
	}
	var b bytes.Buffer
	bench.WriteRegressTable(&b, res)
	if !strings.Contains(b.String(), "a cluster of 3 NATS servers") {
		t.Errorf("the table does not say the servers were a cluster:\n%s", b.String())
	}
}

// regressBinary is the worker binary a regression run compares with
// itself; it skips the test in -short runs, which build nothing.
func regressBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the worker binary")
	}
	bin := workerBinary(t)
	if bin == "" {
		t.Fatal("could not build the worker")
	}
	return bin
}

func TestRegressNeedsBinaries(t *testing.T) {
	if _, err := bench.Regress(t.Context(), bench.RegressOptions{New: "/bin/true"}, nil); err == nil {
		t.Error("a run without the old binary: no error")
	}
}

func TestRegressMedian(t *testing.T) {
	res := bench.RegressResult{Rounds: []bench.RegressRound{{Old: 100, New: 90}, {Old: 100, New: 120}, {Old: 100, New: 100}, {Old: 100, New: 50}}}
	if got := res.Median(bench.RegressRound.NewOverOld); got != 0.95 {
		t.Errorf("median of 0.9, 1.2, 1.0, 0.5 = %v, want 0.95", got)
	}
}

// A process that exits while the run waits for its commands ends the run at
// once, with what the process wrote to its standard error, rather than after
// the run's timeout with "context deadline exceeded" and nothing else.
func TestRunEndsWhenAProcessExits(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "worker")
	script := "#!/bin/sh\necho 'the bucket could not be created' >&2\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := bench.Runner{WorkerBinary: bin}
	_, err := r.Run(t.Context(), bench.Scenario{Mode: bench.ModeMinimal, Processes: 1, Commands: 10, Concurrency: 1, Timeout: time.Minute})
	if err == nil {
		t.Fatal("a run whose only process exited: no error")
	}
	for _, want := range []string{"exited while the run went on", "the bucket could not be created"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the run waited out its timeout: %v", err)
	}
}
