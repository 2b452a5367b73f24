package bench_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/cmd/worker/bench"
	"github.com/chatworker/worker/internal/telemetry"
)

// TestHarness checks that every kind of in-process run completes and
// reports something; it measures nothing (timings are never asserted).
func TestHarness(t *testing.T) {
	r := &bench.Runner{}
	scenarios := []bench.Scenario{
		{Group: bench.GroupLimit, Mode: bench.ModeLimit, Commands: 30, Concurrency: 4, Chats: 5},
		{Group: bench.GroupLimit, Mode: bench.ModeFloor, Commands: 30, Concurrency: 4, Chats: 5},
		{Group: bench.GroupLimit, Mode: bench.ModeFloorNoClaim, Commands: 30, Concurrency: 4, Chats: 5},
		{Group: bench.GroupLimit, Mode: bench.ModeWorker, Commands: 30, Concurrency: 4, Chats: 5},
		{Group: bench.GroupLimit, Mode: bench.ModeNoStore, Commands: 30, Concurrency: 4, Chats: 1},
		{Group: bench.GroupLittle, Mode: bench.ModeLimit, Commands: 30, Concurrency: 8, Latency: time.Millisecond, Chats: 5},
		{Group: bench.GroupLittle, Mode: bench.ModeUnordered, Commands: 30, Concurrency: 8, Latency: time.Millisecond, Chats: 5},
		{Group: bench.GroupLatency, Mode: bench.ModeLimit, Commands: 30, Concurrency: 4, Rate: 300, Chats: 5},
		{Group: bench.GroupLatency, Mode: bench.ModeWorker, Commands: 30, Concurrency: 4, Rate: 300, Chats: 5},
		{Group: bench.GroupOrdered, Mode: bench.ModeWorker, Commands: 30, Concurrency: 8, Latency: time.Millisecond, Chats: 2},
		{Group: bench.GroupOrdered, Mode: bench.ModeUnordered, Commands: 30, Concurrency: 8, Latency: time.Millisecond, Chats: 2},
	}
	results, err := bench.RunSuite(t.Context(), r, scenarios, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		if res.Done != res.Commands || res.Dead != 0 {
			t.Errorf("%s: %d of %d done, %d dead letters", res.Mode, res.Done, res.Commands, res.Dead)
		}
		if res.Throughput <= 0 {
			t.Errorf("%s: no throughput reported", res.Mode)
		}
		// With per-chat order, 2 chats at 1 ms bound the run at 2,000/s,
		// not its 8 call slots' 8,000/s; without it, the slots do.
		if res.Group == bench.GroupOrdered {
			want := map[bench.Mode]float64{bench.ModeWorker: 2000, bench.ModeUnordered: 8000}[res.Mode]
			if res.Bound != want {
				t.Errorf("ordered %s: bound %v, want %v", res.Mode, res.Bound, want)
			}
		}
	}
	var out bytes.Buffer
	bench.WriteTable(&out, results)
	for _, want := range []string{"| limit ", "| floor ", "| floor-noclaim ", "| worker ", "| worker-nostore ", "| 1ms ", "| 300/s ", "limit loop, in-process"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	// The Little's-law table has one row per worker run, with the limit
	// loop's share of the bound in its own column.
	var little []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| 1ms ") {
			little = append(little, line)
		}
	}
	if len(little) != 1 || strings.Count(little[0], "%") != 3 {
		t.Errorf("want one 1ms row with the worker's share, the limit loop's share and CPU, got %q", little)
	}
}

// run runs sc once per benchmark iteration and reports its figures.
func run(b *testing.B, r *bench.Runner, sc bench.Scenario) bench.Result {
	b.Helper()
	var res bench.Result
	for b.Loop() {
		var err error
		if res, err = r.Run(b.Context(), sc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(res.Throughput, "cmd/s")
	if res.Bound > 0 {
		b.ReportMetric(res.Throughput/res.Bound, "of-bound")
	}
	if res.P99 > 0 {
		b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(res.PeakRSS)/(1<<20), "rss-MiB")
	b.ReportMetric(res.CPU, "cpu")
	return res
}

// perCommand runs one zero-latency scenario of b.N commands with the timer
// on only while they are consumed, so ns/op and allocs/op are per command.
func perCommand(b *testing.B, mode bench.Mode) {
	perCommandWith(b, &bench.Runner{}, mode)
}

func perCommandWith(b *testing.B, r *bench.Runner, mode bench.Mode) {
	b.ReportAllocs()
	r.OnStart, r.OnStop = b.ResetTimer, b.StopTimer
	res, err := r.Run(b.Context(), bench.Scenario{Mode: mode, Commands: max(b.N, 64), Concurrency: 64, Chats: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Throughput, "cmd/s")
	// CPU time per command varies less than throughput on a shared machine.
	cpu := res.CPU * float64(runtime.NumCPU()) * res.Elapsed.Seconds()
	b.ReportMetric(cpu*1e6/float64(res.Done), "cpu-µs/cmd")
}

// The limit, the floor and the worker variants at zero API latency, per
// command:
//
//	go test -run '^$' -bench 'PerCommand' -benchtime 10000x ./cmd/worker/bench
func BenchmarkPerCommandLimit(b *testing.B)        { perCommand(b, bench.ModeLimit) }
func BenchmarkPerCommandFloor(b *testing.B)        { perCommand(b, bench.ModeFloor) }
func BenchmarkPerCommandFloorNoClaim(b *testing.B) { perCommand(b, bench.ModeFloorNoClaim) }
func BenchmarkPerCommandWorker(b *testing.B)       { perCommand(b, bench.ModeWorker) }
func BenchmarkPerCommandNoStore(b *testing.B)      { perCommand(b, bench.ModeNoStore) }
func BenchmarkPerCommandUnordered(b *testing.B)    { perCommand(b, bench.ModeUnordered) }

// BenchmarkPerCommandWorkerTraced is the worker with tracing on, set up
// from the environment as `worker run` does it, exporting every span over
// OTLP/HTTP to a receiver in this process that reads and drops them: beside
// BenchmarkPerCommandWorker it is the cost of tracing.
func BenchmarkPerCommandWorkerTraced(b *testing.B) {
	var exports atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		exports.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(srv.Close)
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		b.Setenv(k, "")
	}
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tp, err := telemetry.Setup(b.Context(), nil)
	if err != nil || !tp.Enabled() {
		b.Fatalf("tracing: %v (on: %v)", err, tp.Enabled())
	}
	perCommandWith(b, &bench.Runner{Tracer: tp}, bench.ModeWorker)
	if err := tp.Shutdown(b.Context()); err != nil {
		b.Fatal(err)
	}
	if exports.Load() == 0 {
		b.Fatal("no span reached the receiver")
	}
}

// BenchmarkSuite runs the scenarios of `worker bench` (with --quick sizes
// under -short), one sub-benchmark each:
//
//	go test -run '^$' -bench Suite -benchtime 1x ./cmd/worker/bench
func BenchmarkSuite(b *testing.B) {
	opts := bench.Options{Quick: testing.Short(), WorkerBinary: workerBinary(b)}
	r := &bench.Runner{WorkerBinary: opts.WorkerBinary}
	for _, sc := range opts.Scenarios() {
		b.Run(name(sc), func(b *testing.B) { run(b, r, sc) })
	}
}

func name(sc bench.Scenario) string {
	parts := []string{sc.Group, string(sc.Mode)}
	if sc.Latency > 0 {
		parts = append(parts, "lat="+sc.Latency.String())
	}
	parts = append(parts, "c="+strconv.Itoa(sc.Concurrency))
	if sc.Rate > 0 {
		parts = append(parts, "rate="+strconv.Itoa(sc.Rate))
	}
	if sc.Processes > 0 {
		parts = append(parts, "procs="+strconv.Itoa(sc.Processes))
	}
	parts = append(parts, "chats="+strconv.Itoa(sc.Chats))
	return strings.Join(parts, "/")
}

var (
	buildOnce sync.Once
	binPath   string
)

// TestMain removes the worker binary that the tests and benchmarks with
// worker processes built, once they are all done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// workerBinary builds the worker once for the runs with worker processes;
// without a go command those runs are left out.
func workerBinary(b testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chatworker-bench-bin-")
		if err != nil {
			return
		}
		p := filepath.Join(dir, "worker")
		out, err := exec.Command("go", "build", "-o", p, "github.com/chatworker/worker/cmd/worker").CombinedOutput()
		if err != nil {
			b.Logf("building the worker failed, leaving out the runs with worker processes: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	return binPath
}

// Best keeps each mode's median zero-latency round, with the median of its
// round-by-round ratios to the limit loop, and the median paced round, with
// every round listed.
func TestBest(t *testing.T) {
	ms := time.Millisecond
	in := []bench.Result{
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeLimit, Round: 1}, Throughput: 1000},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeWorker, Round: 1}, Throughput: 100},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Round: 1}, P99: 9 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Processes: 1, Round: 1}, P99: 7 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeLimit, Round: 2}, Throughput: 1000},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeWorker, Round: 2}, Throughput: 300},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Round: 2}, P99: 3 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Processes: 1, Round: 2}, P99: 6 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeLimit, Round: 3}, Throughput: 400},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeWorker, Round: 3}, Throughput: 200},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Round: 3}, P99: 4 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupLatency, Mode: bench.ModeWorker, Rate: 1000, Processes: 1, Round: 3}, P99: 8 * ms},
		{Scenario: bench.Scenario{Group: bench.GroupChats, Mode: bench.ModeWorker, Chats: 1}, Throughput: 50},
	}
	out := bench.Best(in)
	if len(out) != 5 {
		t.Fatalf("%d results, want 5: %+v", len(out), out)
	}
	if r := out[0]; r.Mode != bench.ModeLimit || r.Throughput != 1000 || r.OfLimit != 1 {
		t.Errorf("limit: %v, of limit %v; want the median 1000 and 100%%", r.Throughput, r.OfLimit)
	}
	// Round by round the worker had 10%, 30% and 50% of the limit: the
	// median is 30%, though its median round (200) is 20% of the limit's.
	if r := out[1]; r.Throughput != 200 || len(r.Rounds) != 3 || r.Rounds[0] != 100 || r.OfLimit != 0.3 ||
		len(r.OfLimitRounds) != 3 || r.OfLimitRounds[0] != 0.1 || r.OfLimitRounds[2] != 0.5 {
		t.Errorf("zero latency: %v with rounds %v, of limit %v; want the median (200) of 3 and 30%%", r.Throughput, r.Rounds, r.OfLimit)
	}
	if r := out[2]; r.P99 != 4*ms || len(r.P99Rounds) != 3 || r.P99Rounds[0] != 9*ms {
		t.Errorf("paced in-process: p99 %v, rounds %v; want the median 4ms of 9, 3, 4", r.P99, r.P99Rounds)
	}
	if r := out[3]; r.P99 != 7*ms || r.Processes != 1 {
		t.Errorf("paced own process: p99 %v, want the median 7ms of 7, 6, 8", r.P99)
	}
	if out[4].Group != bench.GroupChats {
		t.Errorf("other groups must pass unchanged: %+v", out[4])
	}
	// Results that are already medians (as `worker bench --json` writes
	// them, and WriteTable takes them) pass unchanged.
	again := bench.Best(out)
	if len(again) != len(out) || again[1].OfLimit != 0.3 || len(again[1].Rounds) != 3 || len(again[2].P99Rounds) != 3 {
		t.Errorf("Best of Best changed the results: %+v", again)
	}
}

// TestWriteTableRatios: each table's ratios are against its own baseline:
// the zero-latency limit for the limit and chats tables, Little's law and
// the limit loop at the same point for the Little's-law table.
func TestWriteTableRatios(t *testing.T) {
	ms := time.Millisecond
	in := []bench.Result{
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeLimit, Round: 1}, Throughput: 1000},
		{Scenario: bench.Scenario{Group: bench.GroupLimit, Mode: bench.ModeWorker, Round: 1}, Throughput: 600},
		{Scenario: bench.Scenario{Group: bench.GroupLittle, Mode: bench.ModeLimit, Concurrency: 10, Latency: 50 * ms}, Throughput: 190, Bound: 200},
		{Scenario: bench.Scenario{Group: bench.GroupLittle, Mode: bench.ModeWorker, Concurrency: 10, Latency: 50 * ms}, Throughput: 170, Bound: 200},
		{Scenario: bench.Scenario{Group: bench.GroupChats, Mode: bench.ModeWorker, Chats: 7}, Throughput: 500},
		{Scenario: bench.Scenario{Group: bench.GroupOrdered, Mode: bench.ModeWorker, Chats: 50, Commands: 3000}, Throughput: 900, Bound: 1000},
		{Scenario: bench.Scenario{Group: bench.GroupOrdered, Mode: bench.ModeUnordered, Chats: 50, Commands: 3840}, Throughput: 1200, Bound: 1280},
		{Scenario: bench.Scenario{Group: bench.GroupOrdered, Mode: bench.ModeWorker, Chats: 50, Commands: 3000, Processes: 2}, Throughput: 800, Bound: 1000},
	}
	var out bytes.Buffer
	bench.WriteTable(&out, in)
	for _, want := range []string{
		"| worker | 0 | 600 | 60% | 60% | 600 |",
		"| 50ms | 10 | 0 | 170 | 200 | 85% | 95% |",
		"| 7 | 0 | 500 | 50% |",
		"| ordered | 50 | 3000 | 900 | 1000 | 90% |",
		"| unordered | 50 | 3840 | 1200 | 1280 | 94% |",
		"| ordered, 2 processes | 50 | 3000 | 800 | 1000 | 80% |",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "| 50ms | 10 | 0 | 190 ") {
		t.Errorf("the limit loop has a row of its own in the Little's-law table:\n%s", out.String())
	}
}

// TestOrderedScenarios: the suite measures per-chat order at 50 ms over 1,
// 50 and 1,000 chats, with the unordered worker beside 50 chats, each run a
// few seconds long at its bound.
func TestOrderedScenarios(t *testing.T) {
	var got []string
	for _, sc := range (bench.Options{}).Scenarios() {
		if sc.Group != bench.GroupOrdered {
			continue
		}
		got = append(got, string(sc.Mode)+"/"+strconv.Itoa(sc.Chats))
		if sc.Latency != 50*time.Millisecond || sc.Concurrency != 64 || sc.Commands < 10*min(sc.Chats, 64) || sc.Commands > 4000 {
			t.Errorf("%+v: want 50 ms, concurrency 64, at least ten commands a chat and at most 4,000", sc)
		}
	}
	if want := "worker/1 worker/50 worker-unordered/50 worker/1000"; strings.Join(got, " ") != want {
		t.Errorf("ordered runs %q, want %q", strings.Join(got, " "), want)
	}
}

// TestOrderedScenariosWithProcesses: with worker processes, the ordered
// group also runs 50 chats over two of them, a few seconds at the bound.
func TestOrderedScenariosWithProcesses(t *testing.T) {
	var got []string
	for _, sc := range (bench.Options{WorkerBinary: "worker"}).Scenarios() {
		if sc.Group == bench.GroupOrdered && sc.Processes > 0 {
			got = append(got, strconv.Itoa(sc.Processes)+"/"+strconv.Itoa(sc.Chats)+"/"+strconv.Itoa(sc.Commands))
		}
	}
	if want := "2/50/3000"; strings.Join(got, " ") != want {
		t.Errorf("ordered runs over processes %q, want %q", strings.Join(got, " "), want)
	}
}
