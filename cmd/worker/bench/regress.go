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
	Old     float64 `json:"old"`
	New     float64 `json:"new"`
	// MinimalCPU, OldCPU and NewCPU are each process's CPU time per
	// command.
	MinimalCPU time.Duration `json:"minimal_cpu"`
	OldCPU     time.Duration `json:"old_cpu"`
	NewCPU     time.Duration `json:"new_cpu"`
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
	res := RegressResult{Old: o.Old, New: o.New, Commands: o.Commands, Chats: o.Chats, Concurrency: o.Concurrency}
	if o.Old == "" || o.New == "" {
		return res, errors.New("bench: a regression run needs the old and the new worker binary")
	}
	if o.Commands < 1 || o.Chats < 1 || o.Concurrency < 1 || o.Rounds < 1 {
		return res, fmt.Errorf("bench: regression run sized %+v: want positive numbers", o)
	}
	run := func(bin string, mode Mode, procs int, round int) (float64, time.Duration, error) {
		r := &Runner{WorkerBinary: bin}
		out, err := r.Run(ctx, Scenario{Group: "regress", Mode: mode, Commands: o.Commands, Concurrency: o.Concurrency,
			Chats: o.Chats, Processes: procs, SelfProvision: mode == ModeWorker, Round: round})
		if err != nil {
			return 0, 0, err
		}
		if out.Dead > 0 {
			return 0, 0, fmt.Errorf("%s: %d dead letters", bin, out.Dead)
		}
		return out.Throughput, out.WorkerCPU / time.Duration(o.Commands), nil
	}
	for round := 1; round <= o.Rounds; round++ {
		rr := RegressRound{Round: round}
		var err error
		if rr.Limit, _, err = run("", ModeLimit, 0, round); err != nil {
			return res, fmt.Errorf("round %d, limit loop: %w", round, err)
		}
		if rr.Minimal, rr.MinimalCPU, err = run(o.Loop, ModeMinimal, 1, round); err != nil {
			return res, fmt.Errorf("round %d, minimal loop: %w", round, err)
		}
		if rr.Old, rr.OldCPU, err = run(o.Old, ModeWorker, 1, round); err != nil {
			return res, fmt.Errorf("round %d, old worker %s: %w", round, o.Old, err)
		}
		if rr.New, rr.NewCPU, err = run(o.New, ModeWorker, 1, round); err != nil {
			return res, fmt.Errorf("round %d, new worker %s: %w", round, o.New, err)
		}
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
	fmt.Fprintf(w, "\n%d waiting `send` commands over %d chats, zero API latency, concurrency %d; the minimal loop and each worker one process of its own; old: %s, new: %s\n\n",
		res.Commands, res.Chats, res.Concurrency, res.Old, res.New)
	ratio := func(f func(RegressRound) float64) string { return fmt.Sprintf("%.2f", res.Median(f)) }
	var (
		oldMin = func(r RegressRound) float64 { return r.Old / r.Minimal }
		newMin = func(r RegressRound) float64 { return r.New / r.Minimal }
		newLim = func(r RegressRound) float64 { return r.New / r.Limit }
	)
	var b strings.Builder
	b.WriteString("| round | limit cmd/s (in-process) | minimal cmd/s | old cmd/s | new cmd/s | old / minimal | new / minimal | new / limit | new / old | CPU/cmd minimal | CPU/cmd old | CPU/cmd new |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range res.Rounds {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %d µs | %d µs | %d µs |\n", r.Round, r.Limit, r.Minimal, r.Old, r.New,
			oldMin(r), newMin(r), newLim(r), r.NewOverOld(), r.MinimalCPU.Microseconds(), r.OldCPU.Microseconds(), r.NewCPU.Microseconds())
	}
	fmt.Fprintf(&b, "| median | | | | | %s | %s | %s | %s | | | |\n", ratio(oldMin), ratio(newMin), ratio(newLim), ratio(RegressRound.NewOverOld))
	io.WriteString(w, b.String())
}
