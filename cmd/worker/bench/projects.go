package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProjectsOptions size `worker bench --projects`: one `worker run` process
// configured with each number of projects in turn (a projects file of that
// many entries), round after round: how long it takes to consume from every
// project's durable, and its CPU with no traffic.
type ProjectsOptions struct {
	Worker   string        // the worker binary
	Projects []int         // e.g. 0 (the default project alone: the baseline) and 1000
	Idle     time.Duration // how long the idle CPU is measured (default 20 s)
	Rounds   int           // default 3
}

// ProjectsRun is one worker process's figures.
type ProjectsRun struct {
	Round    int           `json:"round"`
	Projects int           `json:"projects"`
	Start    time.Duration `json:"start"` // from the process's start to a pull request waiting on every durable
	// WorkerIdle and ServerIdle are the CPU the worker process and the NATS
	// server (with the bench process around it) used per second of idling,
	// as a fraction of one core.
	WorkerIdle float64 `json:"worker_idle"`
	ServerIdle float64 `json:"server_idle"`
}

// RunProjects runs the many-projects scenario, the numbers of projects
// interleaved within each round.
func RunProjects(ctx context.Context, o ProjectsOptions, progress func(ProjectsRun)) ([]ProjectsRun, error) {
	if o.Idle == 0 {
		o.Idle = 20 * time.Second
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	var out []ProjectsRun
	for round := 1; round <= o.Rounds; round++ {
		for _, n := range o.Projects {
			r, err := runProjects(ctx, o, n)
			if err != nil {
				return out, fmt.Errorf("%d projects: %w", n, err)
			}
			r.Round = round
			out = append(out, r)
			if progress != nil {
				progress(r)
			}
		}
	}
	return out, nil
}

func runProjects(ctx context.Context, o ProjectsOptions, n int) (ProjectsRun, error) {
	e, err := startEnv(0, 0)
	if err != nil {
		return ProjectsRun{}, err
	}
	defer e.close()
	var file strings.Builder
	for i := range n {
		fmt.Fprintf(&file, "p%d:GSN-%06d-P=key-%d\n", i, i, i)
	}
	projects := filepath.Join(e.dir, "projects")
	if err := os.WriteFile(projects, []byte(file.String()), 0o600); err != nil {
		return ProjectsRun{}, err
	}
	nc, err := nats.Connect(e.ns.ClientURL())
	if err != nil {
		return ProjectsRun{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return ProjectsRun{}, err
	}

	cmd := exec.Command(o.Worker, "run", "--nats-url", e.ns.ClientURL(), "--chat-api-url", e.api, "--http-addr", "", "--log-level", "error")
	cmd.Env = append(os.Environ(), "GOSQUARED_API_KEY="+apiKey, "GOSQUARED_SITE_TOKEN="+siteToken, "WORKER_HTTP_ADDR=",
		"GOSQUARED_PROJECTS=", "GOSQUARED_PROJECTS_FILE="+projects)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return ProjectsRun{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	// Consuming from every durable: the v1 one, the default project's and
	// the n others', each with a pull request waiting.
	want := n + 2
	for {
		if pulling(ctx, js, consumer.Topology{}.WithDefaults().CommandsStream) >= want {
			break
		}
		select {
		case err := <-exited:
			return ProjectsRun{}, fmt.Errorf("the worker exited: %v: %s", err, strings.TrimSpace(stderr.String()))
		case <-ctx.Done():
			return ProjectsRun{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	r := ProjectsRun{Projects: n, Start: time.Since(start)}
	// Idle: past the start's own work, nothing published.
	select {
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	pid := cmd.Process.Pid
	w0, s0, t0 := procCPU(pid), selfCPU(), time.Now()
	select {
	case <-time.After(o.Idle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	idle := time.Since(t0).Seconds()
	r.WorkerIdle = (procCPU(pid) - w0).Seconds() / idle
	r.ServerIdle = (selfCPU() - s0).Seconds() / idle
	return r, nil
}

// pulling counts the stream's consumers with a pull request waiting.
func pulling(ctx context.Context, js jetstream.JetStream, stream string) int {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	n := 0
	for info := range s.ListConsumers(ctx).Info() {
		if info.NumWaiting > 0 {
			n++
		}
	}
	return n
}

// WriteProjectsTable prints the medians of each number of projects, and the
// ratios to the first (the baseline, measured in the same run).
func WriteProjectsTable(w io.Writer, runs []ProjectsRun) {
	var order []int
	by := map[int][]ProjectsRun{}
	for _, r := range runs {
		if _, ok := by[r.Projects]; !ok {
			order = append(order, r.Projects)
		}
		by[r.Projects] = append(by[r.Projects], r)
	}
	med := func(rs []ProjectsRun, f func(ProjectsRun) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Fprintln(w, "| projects | start to consuming every durable | worker CPU idle (cores) | NATS server CPU idle (cores) | worker idle / baseline |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	var base float64
	for i, n := range order {
		rs := by[n]
		start := time.Duration(med(rs, func(r ProjectsRun) float64 { return float64(r.Start) }))
		wi := med(rs, func(r ProjectsRun) float64 { return r.WorkerIdle })
		si := med(rs, func(r ProjectsRun) float64 { return r.ServerIdle })
		if i == 0 {
			base = wi
		}
		fmt.Fprintf(w, "| %d | %v | %.4f | %.4f | %s |\n", n, start.Round(time.Millisecond), wi, si, ratio(wi, base))
	}
}
