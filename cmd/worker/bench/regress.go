package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/chatworker/worker/consumer"
)

// RegressOptions size `worker bench --against`: an older worker binary and
// the current one, each as one `worker run` process, on the same waiting
// workload, beside the minimal loop, round after round.
type RegressOptions struct {
	Old, New string // worker binaries
	// Loop is the binary that runs the minimal loop in its own process
	// (`worker bench --minimal-loop`); default New.
	Loop        string
	Commands    int // waiting commands per run (default 30,000)
	Chats       int // spread round-robin over this many chats (default 50)
	Concurrency int // each worker's --concurrency and the loop's goroutines (default consumer.DefaultConcurrency)
	Rounds      int // default 5
	// Replicas 3 runs every round on a cluster of three NATS servers, every
	// stream and bucket replicated three times; default 1, one server.
	Replicas int
}

func (o RegressOptions) withDefaults() RegressOptions {
	if o.Commands == 0 {
		o.Commands = 30000
	}
	if o.Chats == 0 {
		o.Chats = 50
	}
	if o.Concurrency == 0 {
		o.Concurrency = consumer.DefaultConcurrency
	}
	if o.Rounds == 0 {
		o.Rounds = 5
	}
	if o.Loop == "" {
		o.Loop = o.New
	}
	return o
}

// RegressRound is one round's throughputs (commands/s, steady rate).
type RegressRound struct {
	Round int `json:"round"`
	// Limit is the consume-call-ack loop in the bench process (ModeLimit),
	// beside the NATS server: the bench suite's limit.
	Limit float64 `json:"limit"`
	// Minimal is the consume-call-publish-ack loop in a process of its own
	// (ModeMinimal), as the workers run: the baseline of a worker's share.
	Minimal float64 `json:"minimal"`
	// Floor is the minimal loop plus a first delivery's two store round
	// trips (ModeMinimalStore), in its own process: the most a worker that
	// keeps the guarantees can reach.
	Floor float64 `json:"floor"`
	Old   float64 `json:"old"`
	New   float64 `json:"new"`
	// MinimalCPU, FloorCPU, OldCPU and NewCPU are each process's CPU time
	// per command.
	MinimalCPU time.Duration `json:"minimal_cpu"`
	FloorCPU   time.Duration `json:"floor_cpu"`
	OldCPU     time.Duration `json:"old_cpu"`
	NewCPU     time.Duration `json:"new_cpu"`
	// OldServerCPU and NewServerCPU are the bench process's CPU time per
	// command while each worker ran: the NATS server's work for it, and the
	// simulator's.
	OldServerCPU time.Duration `json:"old_server_cpu"`
	NewServerCPU time.Duration `json:"new_server_cpu"`
}

// NewOverOld is the round's ratio, the figure a regression shows in.
func (r RegressRound) NewOverOld() float64 { return r.New / r.Old }

// RegressResult is every round of a regression run.
type RegressResult struct {
	Old         string         `json:"old"`
	New         string         `json:"new"`
	Commands    int            `json:"commands"`
	Chats       int            `json:"chats"`
	Concurrency int            `json:"concurrency"`
	Replicas    int            `json:"replicas,omitempty"`
	Rounds      []RegressRound `json:"rounds"`
}

// Regress runs o.Rounds rounds of the in-process limit loop, the minimal
// loop in its own process, the old binary and the new one, in that order,
// each on a fresh NATS server with the commands all published before it
// starts. The machine's load moves between rounds far
// more than a regression does, so only ratios within a round are compared.
// The workers are timed by the results they publish, the loop by its acks.
func Regress(ctx context.Context, o RegressOptions, progress func(RegressRound)) (RegressResult, error) {
	o = o.withDefaults()
	res := RegressResult{Old: o.Old, New: o.New, Commands: o.Commands, Chats: o.Chats, Concurrency: o.Concurrency, Replicas: o.Replicas}
	if o.Old == "" || o.New == "" {
		return res, errors.New("bench: a regression run needs the old and the new worker binary")
	}
	if o.Commands < 1 || o.Chats < 1 || o.Concurrency < 1 || o.Rounds < 1 {
		return res, fmt.Errorf("bench: regression run sized %+v: want positive numbers", o)
	}
	run := func(bin string, mode Mode, procs int, round int) (Result, error) {
		r := &Runner{WorkerBinary: bin}
		out, err := r.Run(ctx, Scenario{Group: "regress", Mode: mode, Commands: o.Commands, Concurrency: o.Concurrency,
			Chats: o.Chats, Processes: procs, SelfProvision: mode == ModeWorker, Round: round, Replicas: o.Replicas})
		if err == nil && out.Dead > 0 {
			err = fmt.Errorf("%s: %d dead letters", bin, out.Dead)
		}
		return out, err
	}
	perCmd := func(d time.Duration) time.Duration { return d / time.Duration(o.Commands) }
	for round := 1; round <= o.Rounds; round++ {
		rr := RegressRound{Round: round}
		limit, err := run("", ModeLimit, 0, round)
		if err != nil {
			return res, fmt.Errorf("round %d, limit loop: %w", round, err)
		}
		minimal, err := run(o.Loop, ModeMinimal, 1, round)
		if err != nil {
			return res, fmt.Errorf("round %d, minimal loop: %w", round, err)
		}
		floor, err := run(o.Loop, ModeMinimalStore, 1, round)
		if err != nil {
			return res, fmt.Errorf("round %d, minimal loop with the store: %w", round, err)
		}
		old, err := run(o.Old, ModeWorker, 1, round)
		if err != nil {
			return res, fmt.Errorf("round %d, old worker %s: %w", round, o.Old, err)
		}
		cur, err := run(o.New, ModeWorker, 1, round)
		if err != nil {
			return res, fmt.Errorf("round %d, new worker %s: %w", round, o.New, err)
		}
		rr.Limit, rr.Minimal, rr.Floor, rr.Old, rr.New = limit.Throughput, minimal.Throughput, floor.Throughput, old.Throughput, cur.Throughput
		rr.MinimalCPU, rr.FloorCPU, rr.OldCPU, rr.NewCPU = perCmd(minimal.WorkerCPU), perCmd(floor.WorkerCPU), perCmd(old.WorkerCPU), perCmd(cur.WorkerCPU)
		rr.OldServerCPU, rr.NewServerCPU = perCmd(old.BenchCPU), perCmd(cur.BenchCPU)
		res.Rounds = append(res.Rounds, rr)
		if progress != nil {
			progress(rr)
		}
	}
	return res, nil
}

// Median is the median of f over the rounds.
func (res RegressResult) Median(f func(RegressRound) float64) float64 {
	v := make([]float64, len(res.Rounds))
	for i, r := range res.Rounds {
		v[i] = f(r)
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// WriteRegressTable prints the rounds as a Markdown table, with the
// medians of the ratios below it.
func WriteRegressTable(w io.Writer, res RegressResult) {
	servers := "one NATS server"
	if res.Replicas > 1 {
		servers = fmt.Sprintf("a cluster of %d NATS servers, every stream and bucket with %d replicas", res.Replicas, res.Replicas)
	}
	fmt.Fprintf(w, "\n%d waiting `send` commands over %d chats, zero API latency, concurrency %d, %s; the minimal loop and each worker one process of its own; old: %s, new: %s\n\n",
		res.Commands, res.Chats, res.Concurrency, servers, res.Old, res.New)
	ratio := func(f func(RegressRound) float64) string { return fmt.Sprintf("%.2f", res.Median(f)) }
	var (
		oldMin = func(r RegressRound) float64 { return r.Old / r.Minimal }
		newMin = func(r RegressRound) float64 { return r.New / r.Minimal }
		newLim = func(r RegressRound) float64 { return r.New / r.Limit }
		flrMin = func(r RegressRound) float64 { return r.Floor / r.Minimal }
	)
	var b strings.Builder
	b.WriteString("| round | limit cmd/s (in-process) | minimal cmd/s | floor cmd/s | old cmd/s | new cmd/s | floor / minimal | old / minimal | new / minimal | new / limit | new / old | CPU/cmd minimal | CPU/cmd floor | CPU/cmd old | CPU/cmd new | server CPU/cmd old | server CPU/cmd new |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range res.Rounds {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %d µs | %d µs | %d µs | %d µs | %d µs | %d µs |\n", r.Round, r.Limit, r.Minimal, r.Floor, r.Old, r.New,
			flrMin(r), oldMin(r), newMin(r), newLim(r), r.NewOverOld(), r.MinimalCPU.Microseconds(), r.FloorCPU.Microseconds(), r.OldCPU.Microseconds(), r.NewCPU.Microseconds(),
			r.OldServerCPU.Microseconds(), r.NewServerCPU.Microseconds())
	}
	fmt.Fprintf(&b, "| median | | | | | | %s | %s | %s | %s | %s | | | | | | |\n", ratio(flrMin), ratio(oldMin), ratio(newMin), ratio(newLim), ratio(RegressRound.NewOverOld))
	io.WriteString(w, b.String())
}
