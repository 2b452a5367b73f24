package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Groups of the suite, one table each.
const (
	GroupLimit   = "limit"   // zero latency: worker next to the minimal loop
	GroupLittle  = "little"  // simulated latency: throughput against Little's law
	GroupLatency = "latency" // paced: latency added, memory
	GroupProcs   = "procs"   // worker processes
	GroupChats   = "chats"   // chats, with per-chat order
	GroupOrdered = "ordered" // per-chat order at simulated latency: chats against their bound
)

// Options size the suite.
type Options struct {
	Commands    int             // zero-latency runs; the others scale from a quarter of it (default 20000)
	Concurrency []int           // Little's-law runs (default 16, 64, 256, 1024)
	Latencies   []time.Duration // Little's-law runs (default 50ms, 200ms)
	Rates       []int           // paced runs (default 1000, 5000 commands/s)
	Processes   []int           // (default 1, 2, 4; empty with no WorkerBinary)
	Chats       []int           // (default 1, 100, 1000)
	Quick       bool            // a tenth of the commands: a check that everything runs
	// Rounds repeats the zero-latency and the paced runs, interleaved, so
	// that load from other processes on a shared machine hits each mode
	// alike; the tables show the median round (default 5; 1 with Quick).
	Rounds        int
	WorkerBinary  string
	LittleSeconds float64 // target duration of a Little's-law run at its bound (default 3)
	// OrderedChats are the chat counts of the per-chat order runs at 50 ms
	// API latency (default 1, 50, 1000); the unordered worker, and with a
	// WorkerBinary two worker processes, run beside the second.
	OrderedChats []int
}

func (o Options) withDefaults() Options {
	if o.Commands <= 0 {
		o.Commands = 20000
	}
	if o.Quick {
		o.Commands = max(o.Commands/10, 100)
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
		if o.Quick {
			o.Rounds = 1
		}
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{16, 64, 256, 1024}
	}
	if len(o.Latencies) == 0 {
		o.Latencies = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond}
	}
	if len(o.Rates) == 0 {
		o.Rates = []int{1000, 5000}
	}
	if len(o.Processes) == 0 && o.WorkerBinary != "" {
		o.Processes = []int{1, 2, 4}
	}
	if len(o.Chats) == 0 {
		o.Chats = []int{1, 100, 1000}
	}
	if len(o.OrderedChats) == 0 {
		o.OrderedChats = []int{1, 50, 1000}
	}
	if o.LittleSeconds <= 0 {
		o.LittleSeconds = 3
		if o.Quick {
			o.LittleSeconds = 0.5
		}
	}
	return o
}

// Scenarios lists the suite's runs, in order.
func (o Options) Scenarios() []Scenario {
	o = o.withDefaults()
	const c = 64 // the worker's default concurrency
	var s []Scenario
	// The limit and the floor first, then the worker in its variants: the
	// same load. A run of 20,000 commands takes 1-3 s, where 5,000 took
	// about 0.3 s and one garbage collection or one stall of the shared
	// machine weighed on a whole run; the other runs keep the sizes they
	// had then.
	for round := 1; round <= o.Rounds; round++ {
		for _, m := range []Mode{ModeLimit, ModeFloor, ModeFloorNoClaim, ModeWorker, ModeNoStore, ModeUnordered} {
			s = append(s, Scenario{Group: GroupLimit, Mode: m, Commands: o.Commands, Concurrency: c, Chats: 1000, Round: round})
		}
	}
	n := o.Commands / 4
	for _, lat := range o.Latencies {
		for _, cc := range o.Concurrency {
			bound := float64(cc) / lat.Seconds()
			cmds := int(bound * o.LittleSeconds)
			cmds = max(cmds, 10*cc)             // ten rounds at least: start-up is left out
			cmds = min(cmds, max(n+n/5, 10*cc)) // the CPU caps the rate well below a high bound
			// The limit loop at the same latency and concurrency shows how
			// close to the bound anything gets here: where it falls short
			// too, the CPU (or the harness) is the limit, not the worker.
			for _, m := range []Mode{ModeLimit, ModeWorker} {
				s = append(s, Scenario{Group: GroupLittle, Mode: m, Commands: cmds, Concurrency: cc, Latency: lat, Chats: 1000})
			}
		}
	}
	// The paced runs are repeated too, interleaved: one stall of the shared
	// machine moves a p99 by milliseconds, so the table shows the median
	// round.
	for round := 1; round <= o.Rounds; round++ {
		for _, rate := range o.Rates {
			// Five seconds of load, at most 10000 commands: a rate above what
			// the worker sustains builds a backlog, which is part of the
			// picture but need not last long.
			cmds := min(5*rate, 10000)
			if o.Quick {
				cmds = min(rate, 2000)
			}
			// The limit loop at the same pace is what the worker's p99 is
			// judged against: the latency the machine adds by itself.
			s = append(s, Scenario{Group: GroupLatency, Mode: ModeLimit, Commands: cmds, Concurrency: c, Rate: rate, Chats: 1000, Round: round})
			s = append(s, Scenario{Group: GroupLatency, Mode: ModeWorker, Commands: cmds, Concurrency: c, Rate: rate, Chats: 1000, Round: round})
			if o.WorkerBinary != "" {
				s = append(s, Scenario{Group: GroupLatency, Mode: ModeWorker, Commands: cmds, Concurrency: c, Rate: rate, Chats: 1000, Processes: 1, Round: round})
			}
		}
	}
	for _, p := range o.Processes {
		s = append(s, Scenario{Group: GroupProcs, Mode: ModeWorker, Commands: n / 2, Concurrency: c, Latency: 50 * time.Millisecond, Chats: 1000, Processes: p})
	}
	for _, ch := range o.Chats {
		cmds := n / 4
		if ch == 1 {
			cmds = n / 10 // one chat runs serially
		}
		s = append(s, Scenario{Group: GroupChats, Mode: ModeWorker, Commands: cmds, Concurrency: c, Chats: ch})
	}
	// Per-chat order at 50 ms: a chat runs its commands one after another,
	// so the bound is min(chats, concurrency) / latency. About
	// LittleSeconds at the bound each, and ten of each chat's commands at
	// least. The unordered worker, beside the middle count, shows what the
	// same load makes without order.
	const orderedLatency = 50 * time.Millisecond
	for i, ch := range o.OrderedChats {
		modes := []Mode{ModeWorker}
		if i == min(1, len(o.OrderedChats)-1) {
			modes = append(modes, ModeUnordered)
		}
		for _, m := range modes {
			sc := Scenario{Group: GroupOrdered, Mode: m, Concurrency: c, Latency: orderedLatency, Chats: ch}
			sc.Commands = max(int(sc.bound()*o.LittleSeconds), 10*min(ch, c))
			s = append(s, sc)
		}
		// The middle count again over two worker processes: a chat's
		// commands are spread over both, and each waits for the one before
		// it on the other.
		if i == min(1, len(o.OrderedChats)-1) && o.WorkerBinary != "" {
			sc := Scenario{Group: GroupOrdered, Mode: ModeWorker, Concurrency: c, Latency: orderedLatency, Chats: ch, Processes: 2}
			sc.Commands = max(int(sc.bound()*o.LittleSeconds), 10*min(ch, c))
			s = append(s, sc)
		}
	}
	return s
}

// bound is Little's law for the scenario, in commands/s (0 without
// latency): its call slots over the API latency, and with per-chat order no
// more than its chats, each running one command at a time.
func (sc Scenario) bound() float64 {
	if sc.Latency <= 0 {
		return 0
	}
	inFlight := sc.Concurrency * max(sc.Processes, 1)
	if sc.Group == GroupOrdered && sc.Mode != ModeUnordered {
		inFlight = min(inFlight, max(sc.Chats, 1))
	}
	return float64(inFlight) / sc.Latency.Seconds()
}

// RunSuite runs the scenarios one after another, reporting each result to
// progress as it comes (nil: quiet).
func RunSuite(ctx context.Context, r *Runner, scenarios []Scenario, progress func(Result)) ([]Result, error) {
	var out []Result
	for _, sc := range scenarios {
		res, err := r.Run(ctx, sc)
		if err != nil {
			return out, fmt.Errorf("%s: %w", describe(sc), err)
		}
		out = append(out, res)
		if progress != nil {
			progress(res)
		}
	}
	return out, nil
}

func describe(sc Scenario) string {
	s := fmt.Sprintf("%s %s n=%d c=%d", sc.Group, sc.Mode, sc.Commands, sc.Concurrency)
	if sc.Latency > 0 {
		s += " latency=" + sc.Latency.String()
	}
	if sc.Rate > 0 {
		s += fmt.Sprintf(" rate=%d/s", sc.Rate)
	}
	if sc.Processes > 0 {
		s += fmt.Sprintf(" procs=%d", sc.Processes)
	}
	return s + fmt.Sprintf(" chats=%d", sc.Chats)
}

// WriteTable prints the results as a Markdown table per group, with the
// ratios against the limit and Little's law measured in the same run.
func WriteTable(w io.Writer, results []Result) {
	results = Best(results)
	var limit float64
	for _, r := range results {
		if r.Group == GroupLimit && r.Mode == ModeLimit {
			limit = r.Throughput
		}
	}
	groups := []struct{ name, title, head string }{
		{GroupLimit, "Zero API latency, concurrency 64, 1000 chats: the worker next to the minimal consume-call-ack loop (limit), that loop plus the three writes the guarantees need (floor), and the floor without the claim (floor-noclaim: the bound of a design that claims only on redeliveries); of limit is the median over the rounds of each round's ratio",
			"| run | commands | cmd/s (median round) | of limit | of limit, round by round | all rounds cmd/s | CPU | allocs/cmd | peak RSS (all in-process) |"},
		{GroupLittle, "Simulated API latency: throughput against Little's law (concurrency / latency)",
			"| latency | concurrency | commands | cmd/s | bound cmd/s | of bound | limit loop: of bound | CPU |"},
		{GroupLatency, "Paced load, zero API latency: latency the worker adds (publish to result, minus the API's time) and memory, beside the limit loop at the same pace (publish to its ack)",
			"| rate | worker | achieved cmd/s | p50 | p99 (median round) | p99 all rounds | peak RSS | peak heap | CPU |"},
		{GroupProcs, "Worker processes (concurrency 64 each), API latency 50 ms",
			"| processes | commands | cmd/s | bound cmd/s | of bound | RSS per process | CPU |"},
		{GroupChats, "Chats, per-chat order on, zero API latency, concurrency 64",
			"| chats | commands | cmd/s | of limit | CPU |"},
		{GroupOrdered, "Per-chat order at 50 ms API latency, concurrency 64: bound min(chats, 64) / latency (the unordered worker's: 64 / latency)",
			"| worker | chats | commands | cmd/s | bound cmd/s | of bound | CPU |"},
	}
	for _, g := range groups {
		var rows []Result
		for _, r := range results {
			if r.Group == g.name && !(g.name == GroupLittle && r.Mode == ModeLimit) {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n\n", g.title)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
		fmt.Fprintln(tw, tabbed(g.head))
		fmt.Fprintln(tw, tabbed(separator(g.head)))
		for _, r := range rows {
			against := limit
			if g.name == GroupLittle {
				against = littleLimit(results, r)
			}
			fmt.Fprintln(tw, tabbed(row(g.name, r, against)))
		}
		tw.Flush()
	}
}

// row is one table row; limit is what its ratios are against (for the
// Little's-law table, the limit loop at the same point).
func row(group string, r Result, limit float64) string {
	cpu := fmt.Sprintf("%.0f%%", 100*r.CPU)
	switch group {
	case GroupLimit:
		rounds := make([]string, len(r.Rounds))
		for i, t := range r.Rounds {
			rounds[i] = fmt.Sprintf("%.0f", t)
		}
		ofLimit, ofLimitRounds := "-", make([]string, len(r.OfLimitRounds))
		if r.OfLimit > 0 {
			ofLimit = ratio(r.OfLimit, 1)
		}
		for i, f := range r.OfLimitRounds {
			ofLimitRounds[i] = ratio(f, 1)
		}
		return fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %.0f | %s |", r.Mode, r.Commands, r.Throughput, ofLimit,
			strings.Join(ofLimitRounds, ", "), strings.Join(rounds, ", "), cpu, r.AllocsPerCmd, mib(r.PeakRSS))
	case GroupLittle:
		return fmt.Sprintf("| %v | %d | %d | %.0f | %.0f | %s | %s | %s |", r.Latency, r.Concurrency, r.Commands, r.Throughput, r.Bound, ratio(r.Throughput, r.Bound), ratio(limit, r.Bound), cpu)
	case GroupLatency:
		who := "in-process (RSS: worker + NATS + simulator)"
		if r.Mode == ModeLimit {
			who = "limit loop, in-process (timed at its ack)"
		}
		if r.Processes > 0 {
			who = "own process (RSS: worker only)"
		}
		achieved := float64(r.Done) / r.Elapsed.Seconds()
		heap := "-"
		if r.PeakHeap > 0 {
			heap = mib(r.PeakHeap)
		}
		rounds := make([]string, len(r.P99Rounds))
		for i, d := range r.P99Rounds {
			rounds[i] = ms(d)
		}
		return fmt.Sprintf("| %d/s | %s | %.0f | %s | %s | %s | %s | %s | %s |", r.Rate, who, achieved, ms(r.P50), ms(r.P99), strings.Join(rounds, ", "), mib(r.PeakRSS), heap, cpu)
	case GroupProcs:
		return fmt.Sprintf("| %d | %d | %.0f | %.0f | %s | %s | %s |", r.Processes, r.Commands, r.Throughput, r.Bound, ratio(r.Throughput, r.Bound), mib(r.PeakRSS/uint64(max(r.Processes, 1))), cpu)
	case GroupChats:
		return fmt.Sprintf("| %d | %d | %.0f | %s | %s |", r.Chats, r.Commands, r.Throughput, ratio(r.Throughput, limit), cpu)
	case GroupOrdered:
		who := "ordered"
		if r.Mode == ModeUnordered {
			who = "unordered"
		}
		if r.Processes > 0 {
			who += fmt.Sprintf(", %d processes", r.Processes)
		}
		return fmt.Sprintf("| %s | %d | %d | %.0f | %.0f | %s | %s |", who, r.Chats, r.Commands, r.Throughput, r.Bound, ratio(r.Throughput, r.Bound), cpu)
	}
	return ""
}

// littleLimit is the limit loop's throughput at r's latency and
// concurrency (0 if it did not run).
func littleLimit(results []Result, r Result) float64 {
	for _, l := range results {
		if l.Group == GroupLittle && l.Mode == ModeLimit && l.Latency == r.Latency && l.Concurrency == r.Concurrency {
			return l.Throughput
		}
	}
	return 0
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// tabbed turns "| a | b |" into tab-separated cells for tabwriter, keeping
// the pipes so the output is still a Markdown table.
func tabbed(s string) string {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		if s[i] == '|' && i > 0 {
			out = append(out, '\t')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func separator(head string) string {
	out := []byte{}
	for i := 0; i < len(head); i++ {
		if head[i] == '|' {
			if i > 0 {
				out = append(out, []byte(" --- ")...)
			}
			out = append(out, '|')
		}
	}
	return string(out)
}

// Best keeps, of the repeated zero-latency runs, each mode's median round,
// with every round's throughput in Rounds and, in OfLimit, the median of its
// round-by-round ratios to the limit loop; of the repeated paced runs, the
// round with the median p99, with every round's p99 in P99Rounds. Other
// results pass unchanged, in order.
//
// Medians, not best rounds: on a shared machine one mode's lucky round
// against another's unlucky one moved the ratio by 15 points; rounds run
// side by side, and the ratio within a round compares like with like.
func Best(results []Result) []Result {
	var out []Result
	at := map[string]int{}
	repeated := map[string][]Result{}
	for _, r := range results {
		if len(r.Rounds) > 0 || len(r.P99Rounds) > 0 {
			// Already the median of its rounds (Best ran before, as for
			// results read back from `worker bench --json`).
			out = append(out, r)
			continue
		}
		var key string
		switch r.Group {
		case GroupLimit:
			key = "zero " + string(r.Mode)
		case GroupLatency:
			key = fmt.Sprintf("paced %d %d %s", r.Rate, r.Processes, r.Mode)
		default:
			out = append(out, r)
			continue
		}
		if _, seen := at[key]; !seen {
			at[key] = len(out)
			out = append(out, r)
		}
		repeated[key] = append(repeated[key], r)
	}
	limit := repeated["zero "+string(ModeLimit)]
	for key, rs := range repeated {
		if rs[0].Group == GroupLatency {
			p99s := make([]time.Duration, len(rs))
			for i, r := range rs {
				p99s[i] = r.P99
			}
			m := median(rs, func(a, b Result) int { return cmp.Compare(a.P99, b.P99) })
			m.P99Rounds = p99s
			out[at[key]] = m
			continue
		}
		rounds := make([]float64, len(rs))
		var ratios []float64
		for i, r := range rs {
			rounds[i] = r.Throughput
			if i < len(limit) && limit[i].Throughput > 0 {
				ratios = append(ratios, r.Throughput/limit[i].Throughput)
			}
		}
		m := median(rs, func(a, b Result) int { return cmp.Compare(a.Throughput, b.Throughput) })
		m.Rounds = rounds
		if len(ratios) > 0 {
			m.OfLimitRounds = ratios
			sorted := slices.Sorted(slices.Values(ratios))
			m.OfLimit = sorted[(len(sorted)-1)/2]
		}
		out[at[key]] = m
	}
	return out
}

// median returns the middle of rs by cmp (the lower middle of an even count).
func median(rs []Result, cmp func(a, b Result) int) Result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, cmp)
	return sorted[(len(sorted)-1)/2]
}
