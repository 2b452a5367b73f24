package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chatworker/worker/cmd/worker/bench"
	"github.com/chatworker/worker/consumer"
)

// runBench runs the benchmark suite of cmd/worker/bench against an embedded NATS
// server and the simulator, with this binary as the worker processes, and
// prints the results as Markdown tables; with --soak, the soak instead.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		opts              bench.Options
		concurrency, lats string
		jsonPath          string
		inProcessOnly     bool
		soak              bool
		soakOpts          bench.SoakOptions
		serveNATS         string
		minimal           bool
		minimalOpts       bench.MinimalOptions
		regress           bench.RegressOptions
		against, current  string
		projects          string
		projectsOpts      bench.ProjectsOptions
	)
	fs := newFlagSet("bench", "bench [flags]", stderr)
	fs.Int(&opts.Commands, "commands", "", 20000, "commands per zero-latency run; the other runs are sized from a quarter of it")
	fs.String(&concurrency, "concurrency", "", "16,64,256,1024", "concurrency of the Little's-law runs, comma separated")
	fs.String(&lats, "latencies", "", "50ms,200ms", "API latencies of the Little's-law runs, comma separated")
	fs.Bool(&opts.Quick, "quick", "", false, "a tenth of the commands and short runs: checks that everything works, measures little")
	fs.String(&jsonPath, "json", "", "", "also write the results as JSON to this file (the input of cmd/benchchart)")
	fs.Int(&opts.Rounds, "rounds", "", 0, "rounds of the zero-latency and paced runs, interleaved; the tables show medians (default 5, 1 with --quick)")
	fs.Bool(&inProcessOnly, "in-process-only", "", false, "leave out the runs with worker child processes (with --soak: worker and NATS server in this process)")
	fs.Bool(&soak, "soak", "", false, "instead of the suite, run one worker over --soak-commands in rounds: rate, memory, goroutines and store bytes per command, round by round")
	fs.Int(&soakOpts.Commands, "soak-commands", "", 500000, "with --soak: commands in all")
	fs.Int(&soakOpts.Round, "soak-round", "", 50000, "with --soak: commands per round")
	fs.Int(&soakOpts.Concurrency, "soak-concurrency", "", consumer.DefaultConcurrency, "with --soak: the worker's concurrency")
	fs.String(&against, "against", "", "", "instead of the suite, a regression run: this older build (a git revision, built in a temporary worktree, or a worker binary) against --current, interleaved round by round with the minimal loop")
	fs.String(&current, "current", "", "", "with --against: the worker binary to compare (default this binary)")
	fs.Int(&regress.Commands, "against-commands", "", 30000, "with --against: waiting commands per run")
	fs.Int(&regress.Chats, "against-chats", "", 50, "with --against: chats the commands are spread over")
	fs.Int(&regress.Concurrency, "against-concurrency", "", consumer.DefaultConcurrency, "with --against: each worker's --concurrency and the minimal loop's")
	fs.Int(&regress.Replicas, "against-replicas", "", 1, "with --against: 3 runs a cluster of three NATS servers with every stream and bucket replicated three times (each worker's --replicas), as in production")
	fs.String(&projects, "projects", "", "", "instead of the suite, the many-projects scenario: one worker process configured with each of these numbers of projects in turn (comma separated, the first the baseline, such as 0,1000), round by round (--rounds, default 3): its start and its CPU with no traffic")
	fs.Duration(&projectsOpts.Idle, "projects-idle", "", 20*time.Second, "with --projects: how long the idle CPU is measured")
	// Internal: the NATS server of a soak, in a process of its own.
	fs.String(&serveNATS, "serve-nats", "", "", "run only the bench's NATS server, storing in this directory, until stopped (used by --soak)")
	// Internal: the minimal loop of --against, in a process of its own.
	fs.Bool(&minimal, "minimal-loop", "", false, "run only the minimal consume-call-publish-ack loop on the bench's consumer until stopped (used by --against)")
	fs.String(&minimalOpts.NATSURL, "minimal-nats-url", "", "", "with --minimal-loop: the bench's NATS server")
	fs.String(&minimalOpts.APIURL, "minimal-api-url", "", "", "with --minimal-loop: the bench's API simulator")
	fs.Int(&minimalOpts.Concurrency, "minimal-concurrency", "", consumer.DefaultConcurrency, "with --minimal-loop: goroutines")
	fs.Bool(&minimalOpts.Store, "minimal-store", "", false, "with --minimal-loop: also read a record before each call and create one after it")
	fs.Int(&minimalOpts.Replicas, "minimal-replicas", "", 1, "with --minimal-store: the records' bucket's replicas")
	if err := fs.parse(args); err != nil {
		return err
	}
	if serveNATS != "" {
		return bench.ServeNATS(ctx, serveNATS, stdout)
	}
	if minimal {
		if minimalOpts.NATSURL == "" || minimalOpts.APIURL == "" {
			return usageError{errors.New("--minimal-loop needs --minimal-nats-url and --minimal-api-url")}
		}
		minimalOpts.Errors = stderr
		return bench.MinimalLoop(ctx, minimalOpts)
	}
	if projects != "" {
		if soak || against != "" {
			return usageError{errors.New("--projects with --soak or --against: choose one")}
		}
		for _, f := range strings.Split(projects, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return usageError{fmt.Errorf("--projects %q: want numbers of projects, comma separated", projects)}
			}
			projectsOpts.Projects = append(projectsOpts.Projects, n)
		}
		bin, err := os.Executable()
		if err != nil {
			return err
		}
		projectsOpts.Worker, projectsOpts.Rounds = bin, opts.Rounds
		runs, err := bench.RunProjects(ctx, projectsOpts, func(r bench.ProjectsRun) {
			fmt.Fprintf(stderr, "round %d: %d projects: consuming every durable after %v; idle CPU worker %.4f, server %.4f cores\n",
				r.Round, r.Projects, r.Start.Round(time.Millisecond), r.WorkerIdle, r.ServerIdle)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		bench.WriteProjectsTable(stdout, runs)
		return nil
	}
	if against != "" {
		if soak {
			return usageError{errors.New("--against and --soak: choose one")}
		}
		regress.Rounds = opts.Rounds
		if regress.Rounds == 0 {
			regress.Rounds = 5
		}
		if regress.Commands < 1 || regress.Chats < 1 || regress.Concurrency < 1 || regress.Rounds < 1 {
			return usageError{fmt.Errorf("--against-commands %d, --against-chats %d, --against-concurrency %d, --rounds %d: want positive numbers",
				regress.Commands, regress.Chats, regress.Concurrency, regress.Rounds)}
		}
		if regress.Replicas != 1 && regress.Replicas != 3 {
			return usageError{fmt.Errorf("--against-replicas %d: want 1 (one NATS server) or 3 (a cluster of three)", regress.Replicas)}
		}
		return runRegress(ctx, regress, against, current, jsonPath, args, stdout, stderr)
	}
	if current != "" {
		return usageError{errors.New("--current: only with --against")}
	}
	if soak {
		if soakOpts.Commands < 1 || soakOpts.Round < 1 || soakOpts.Round > soakOpts.Commands || soakOpts.Concurrency < 1 {
			return usageError{fmt.Errorf("--soak-commands %d, --soak-round %d, --soak-concurrency %d: want positive numbers, the round no larger than the total",
				soakOpts.Commands, soakOpts.Round, soakOpts.Concurrency)}
		}
		return runSoak(ctx, soakOpts, inProcessOnly, jsonPath, args, stdout, stderr)
	}
	var err error
	if opts.Concurrency, err = parseInts(concurrency); err != nil {
		return usageError{fmt.Errorf("--concurrency: %w", err)}
	}
	if opts.Latencies, err = parseDurations(lats); err != nil {
		return usageError{fmt.Errorf("--latencies: %w", err)}
	}
	if opts.Commands < 100 {
		return usageError{fmt.Errorf("--commands %d: want at least 100", opts.Commands)}
	}
	if !inProcessOnly {
		if opts.WorkerBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("finding this binary for the worker processes: %w (or pass --in-process-only)", err)
		}
	}
	r := &bench.Runner{WorkerBinary: opts.WorkerBinary}
	scenarios := opts.Scenarios()

	fmt.Fprintf(stdout, "Machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "Command: worker %s\n", strings.Join(append([]string{"bench"}, args...), " "))
	fmt.Fprintln(stdout, "NATS: embedded nats-server in this process, over TCP loopback; API: the simulator over HTTP on loopback.")
	start := time.Now()
	results, err := bench.RunSuite(ctx, r, scenarios, func(res bench.Result) {
		fmt.Fprintf(stderr, "done %-16s %-7s n=%-6d c=%-5d latency=%-6v rate=%-5d procs=%d chats=%-5d  %8.0f cmd/s  (%v)\n",
			res.Mode, res.Group, res.Commands, res.Concurrency, res.Latency, res.Rate, res.Processes, res.Chats, res.Throughput, res.Elapsed.Round(time.Millisecond))
	})
	if len(results) > 0 {
		bench.WriteTable(stdout, results)
		fmt.Fprintf(stdout, "\n%d runs in %v.\n", len(results), time.Since(start).Round(time.Second))
	}
	if jsonPath != "" && len(results) > 0 {
		b, jerr := json.MarshalIndent(report{Machine: cpuModel(), Cores: runtime.NumCPU(), Go: runtime.Version(),
			Command: "worker " + strings.Join(append([]string{"bench"}, args...), " "), Results: bench.Best(results)}, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// runSoak runs `worker bench --soak`: this binary as the worker and, in
// another process, as the NATS server.
func runSoak(ctx context.Context, o bench.SoakOptions, inProcessOnly bool, jsonPath string, args []string, stdout, stderr io.Writer) error {
	if !inProcessOnly {
		var err error
		if o.WorkerBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("finding this binary for the worker and NATS server processes: %w (or pass --in-process-only)", err)
		}
	}
	command := "worker " + strings.Join(append([]string{"bench"}, args...), " ")
	fmt.Fprintf(stdout, "Machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "Command: %s\n", command)
	if inProcessOnly {
		fmt.Fprintln(stdout, "Worker and embedded NATS server in this process; API: the simulator over HTTP on loopback.")
	} else {
		fmt.Fprintln(stdout, "Worker: `worker run` in its own process; NATS: `worker bench --serve-nats` (an embedded nats-server, file storage) in its own process; API: the simulator in this process, over HTTP on loopback.")
	}
	start := time.Now()
	res, err := bench.Soak(ctx, o, func(r bench.SoakRound) {
		fmt.Fprintf(stderr, "round %-3d %8d commands  %7.0f cmd/s  worker RSS %5.1f MiB, %d goroutines  NATS RSS %6.1f MiB  (%v)\n",
			r.Round, r.Commands, r.Rate, float64(r.WorkerRSS)/(1<<20), r.WorkerGoroutines, float64(r.ServerRSS)/(1<<20), time.Since(start).Round(time.Second))
	})
	if len(res.Rounds) > 0 {
		bench.WriteSoakTable(stdout, res)
		fmt.Fprintf(stdout, "\n%d rounds in %v.\n", len(res.Rounds), time.Since(start).Round(time.Second))
	}
	if jsonPath != "" && len(res.Rounds) > 0 {
		b, jerr := json.MarshalIndent(report{Machine: cpuModel(), Cores: runtime.NumCPU(), Go: runtime.Version(), Command: command, Soak: &res}, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// report is the JSON written with --json.
type report struct {
	Machine string               `json:"machine"`
	Cores   int                  `json:"cores"`
	Go      string               `json:"go"`
	Command string               `json:"command"`
	Results []bench.Result       `json:"results,omitempty"`
	Soak    *bench.SoakResult    `json:"soak,omitempty"`    // --soak
	Regress *bench.RegressResult `json:"regress,omitempty"` // --against
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100000 {
			return nil, fmt.Errorf("%q: want numbers from 1 to 100000, comma separated", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := parseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q: want positive durations such as 50ms, comma separated", f)
		}
		out = append(out, d)
	}
	return out, nil
}

// cpuModel names the processor, from /proc/cpuinfo where there is one.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
