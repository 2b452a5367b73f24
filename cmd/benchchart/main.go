// Command benchchart draws the results of `worker bench --json FILE` as an
// SVG image, with the standard library only; the results of
// `worker bench --soak --json FILE` are drawn round by round:
//
//	go run ./cmd/benchchart -in bench.json -out docs/bench.svg
//	go run ./cmd/benchchart -in soak.json -out docs/soak.svg
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

// report is what `worker bench --json` writes; only the fields drawn.
type report struct {
	Machine string   `json:"machine"`
	Cores   int      `json:"cores"`
	Go      string   `json:"go"`
	Command string   `json:"command"`
	Results []result `json:"results"`
	Soak    *soak    `json:"soak"`
}

// soak is what `worker bench --soak --json` writes; only the fields drawn.
type soak struct {
	Layout              string      `json:"layout"`
	Commands            int         `json:"commands"`
	Round               int         `json:"round_size"`
	Concurrency         int         `json:"concurrency"`
	ServerRSSStart      uint64      `json:"server_rss_start"`
	ServerRSSPerCommand float64     `json:"server_rss_per_command"`
	Rounds              []soakRound `json:"rounds"`
}

type soakRound struct {
	Round            int     `json:"round"`
	Commands         int     `json:"commands"`
	Rate             float64 `json:"rate"`
	WorkerRSS        uint64  `json:"worker_rss"`
	WorkerGoroutines int     `json:"worker_goroutines"`
	ServerRSS        uint64  `json:"server_rss"`
	Streams          []struct {
		Stream string `json:"stream"`
		Bytes  uint64 `json:"bytes"`
		Disk   uint64 `json:"disk"`
	} `json:"streams"`
}

type result struct {
	Group       string        `json:"group"`
	Mode        string        `json:"mode"`
	Commands    int           `json:"commands"`
	Concurrency int           `json:"concurrency"`
	Latency     time.Duration `json:"latency"`
	Chats       int           `json:"chats"`
	Rate        int           `json:"rate"`
	Processes   int           `json:"processes"`
	Done        int           `json:"done"`
	Elapsed     time.Duration `json:"elapsed"`
	Throughput  float64       `json:"throughput"`
	OfLimit     float64       `json:"of_limit"`
	Bound       float64       `json:"bound"`
	P50         time.Duration `json:"p50"`
	P99         time.Duration `json:"p99"`
	PeakRSS     uint64        `json:"peak_rss"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchchart", flag.ContinueOnError)
	in := fs.String("in", "bench.json", "results written by `worker bench --json`")
	out := fs.String("out", "docs/bench.svg", "SVG file to write (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	var svg string
	switch {
	case rep.Soak != nil && len(rep.Soak.Rounds) > 0:
		svg = draw(rep, "chat command worker: soak, one worker round by round", soakPanels(*rep.Soak))
	case len(rep.Results) > 0:
		svg = draw(rep, "chat command worker: one worker against the simulator", panels(rep.Results))
	default:
		return errors.New(*in + ": no results")
	}
	if *out == "-" {
		_, err = io.WriteString(stdout, svg)
		return err
	}
	return os.WriteFile(*out, []byte(svg), 0o644)
}

// bar is one horizontal bar: its length is value/scale of the panel width.
type bar struct {
	label string
	value float64
	text  string // written after the bar
	color string
}

type panel struct {
	title  string
	bars   []bar
	scale  float64 // the value of a full-width bar
	target float64 // a dashed line at this value (0: none)
	tlabel string
}

const (
	width  = 1180
	labelW = 300
	barW   = 520
	barH   = 18
	gap    = 6
)

func draw(rep report, title string, panels []panel) string {
	var sb strings.Builder
	y := 70
	body := &strings.Builder{}
	for _, p := range panels {
		if len(p.bars) == 0 {
			continue
		}
		y = p.render(body, y) + 28
	}
	height := y + 10
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&sb, `<text x="16" y="26" font-size="17" font-weight="bold">%s</text>`+"\n", esc(title))
	fmt.Fprintf(&sb, `<text x="16" y="46" fill="#555">%s</text>`+"\n", esc(fmt.Sprintf("%s, %d cores, %s: %s", rep.Machine, rep.Cores, rep.Go, rep.Command)))
	sb.WriteString(body.String())
	sb.WriteString("</svg>\n")
	return sb.String()
}

func (p panel) render(w io.Writer, y int) int {
	fmt.Fprintf(w, `<text x="16" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", y, esc(p.title))
	y += 10
	top := y
	for _, b := range p.bars {
		l := 0.0
		if p.scale > 0 {
			l = min(b.value/p.scale, 1) * barW
		}
		color := b.color
		if color == "" {
			color = "#4e79a7"
		}
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+barH-5, esc(b.label))
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y, l, barH, color)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" fill="#222">%s</text>`+"\n", float64(labelW)+l+6, y+barH-5, esc(b.text))
		y += barH + gap
	}
	if p.target > 0 && p.scale > 0 {
		x := float64(labelW) + min(p.target/p.scale, 1)*barW
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e15759" stroke-dasharray="4 3"/>`+"\n", x, top-4, x, y-gap+4)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" fill="#e15759" font-size="11">%s</text>`+"\n", x+4, top+4, esc(p.tlabel))
	}
	return y
}

func panels(rs []result) []panel {
	var limit float64
	for _, r := range rs {
		if r.Group == "limit" && r.Mode == "limit" {
			limit = r.Throughput
		}
	}
	pct := func(a, b float64) string {
		if b <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.0f%%)", 100*a/b)
	}
	var ps []panel

	p := panel{title: "Zero API latency, concurrency 64: share of the minimal loop (limit), median of the rounds' ratios", scale: 1, target: 0.6, tlabel: "60% of limit"}
	for _, r := range rs {
		if r.Group == "limit" {
			c := "#4e79a7"
			switch r.Mode {
			case "limit":
				c = "#9c9c9c"
			case "floor":
				c = "#c7c7c7"
			}
			share := r.OfLimit
			if share == 0 && limit > 0 { // results from before of_limit
				share = r.Throughput / limit
			}
			p.bars = append(p.bars, bar{label: r.Mode, value: share, text: fmt.Sprintf("%.0f%% (median round %.0f/s)", 100*share, r.Throughput), color: c})
		}
	}
	ps = append(ps, p)

	p = panel{title: "Simulated API latency: share of Little's-law bound (concurrency / latency); the minimal loop's share alongside", scale: 1, target: 0.9, tlabel: "90%"}
	littleLimit := map[string]float64{}
	for _, r := range rs {
		if r.Group == "little" && r.Mode == "limit" {
			littleLimit[fmt.Sprint(r.Latency, r.Concurrency)] = r.Throughput
		}
	}
	for _, r := range rs {
		if r.Group == "little" && r.Mode != "limit" && r.Bound > 0 {
			text := fmt.Sprintf("%.0f of %.0f/s (%.0f%%)", r.Throughput, r.Bound, 100*r.Throughput/r.Bound)
			if l, ok := littleLimit[fmt.Sprint(r.Latency, r.Concurrency)]; ok {
				text += fmt.Sprintf("; limit loop %.0f%%", 100*l/r.Bound)
			}
			p.bars = append(p.bars, bar{label: fmt.Sprintf("%v, concurrency %d", r.Latency, r.Concurrency), value: r.Throughput / r.Bound, text: text})
		}
	}
	ps = append(ps, p)

	p = panel{title: "Latency added by the worker at a paced rate (p99; publish to result minus the API's time)", target: 5, tlabel: "5 ms"}
	for _, r := range rs {
		if r.Group == "latency" {
			where := "in-process"
			if r.Processes > 0 {
				where = "own process"
			}
			ms := float64(r.P99) / float64(time.Millisecond)
			p.bars = append(p.bars, bar{label: fmt.Sprintf("%d/s offered, %s", r.Rate, where), value: ms,
				text: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, %.0f/s done, RSS %.0f MiB", float64(r.P50)/1e6, ms, float64(r.Done)/r.Elapsed.Seconds(), float64(r.PeakRSS)/(1<<20)), color: "#f28e2b"})
			p.scale = max(p.scale, ms, 10)
		}
	}
	ps = append(ps, p)

	p = panel{title: "Scaling: worker processes (50 ms API latency, concurrency 64 each) and chats (per-chat order)"}
	for _, r := range rs {
		switch r.Group {
		case "procs":
			p.bars = append(p.bars, bar{label: fmt.Sprintf("%d worker process(es)", r.Processes), value: r.Throughput,
				text: fmt.Sprintf("%.0f/s of %.0f/s bound", r.Throughput, r.Bound), color: "#59a14f"})
			p.scale = max(p.scale, r.Throughput, r.Bound)
		case "chats":
			p.bars = append(p.bars, bar{label: fmt.Sprintf("%d chat(s), zero latency", r.Chats), value: r.Throughput,
				text: fmt.Sprintf("%.0f/s", r.Throughput) + pct(r.Throughput, limit), color: "#76b7b2"})
			p.scale = max(p.scale, r.Throughput)
		}
	}
	ps = append(ps, p)
	return ps
}

// soakPanels draw a soak round by round: the rate against 85 % of the
// first round's, the worker's memory, the server's, and what the store
// holds per command.
func soakPanels(s soak) []panel {
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	label := func(r soakRound) string { return fmt.Sprintf("round %d (%d commands)", r.Round, r.Commands) }
	first := s.Rounds[0].Rate
	rate := panel{title: fmt.Sprintf("Rate per round of %d commands (concurrency %d, every guarantee on); target: the last round at 85%% of the first", s.Round, s.Concurrency),
		target: 0.85 * first, tlabel: "85% of round 1"}
	worker := panel{title: "Worker RSS at each round's end (" + s.Layout + "); goroutines alongside", scale: 64}
	server := panel{title: fmt.Sprintf("NATS server RSS at each round's end: %.0f bytes per command from %.0f MiB at the start", s.ServerRSSPerCommand, mib(s.ServerRSSStart))}
	store := panel{title: "Store per command, cumulative: CHAT_RESULTS + KV_CHAT_IDEMPOTENCY as JetStream counts them (on disk alongside)"}
	for _, r := range s.Rounds {
		rate.bars = append(rate.bars, bar{label: label(r), value: r.Rate, text: fmt.Sprintf("%.0f/s (%.0f%% of round 1)", r.Rate, 100*r.Rate/first)})
		rate.scale = max(rate.scale, r.Rate)
		worker.bars = append(worker.bars, bar{label: label(r), value: mib(r.WorkerRSS), color: "#59a14f",
			text: fmt.Sprintf("%.1f MiB, %d goroutines", mib(r.WorkerRSS), r.WorkerGoroutines)})
		worker.scale = max(worker.scale, mib(r.WorkerRSS))
		if r.ServerRSS > 0 {
			server.bars = append(server.bars, bar{label: label(r), value: mib(r.ServerRSS), color: "#f28e2b", text: fmt.Sprintf("%.0f MiB", mib(r.ServerRSS))})
			server.scale = max(server.scale, mib(r.ServerRSS))
		}
		var bytes, disk float64
		var parts []string
		for _, st := range r.Streams {
			if st.Stream != "CHAT_RESULTS" && st.Stream != "KV_CHAT_IDEMPOTENCY" {
				continue
			}
			b, d := float64(st.Bytes)/float64(r.Commands), float64(st.Disk)/float64(r.Commands)
			bytes, disk = bytes+b, disk+d
			parts = append(parts, fmt.Sprintf("%s %.0f B (disk %.0f)", st.Stream, b, d))
		}
		store.bars = append(store.bars, bar{label: label(r), value: bytes, color: "#76b7b2", text: strings.Join(parts, ", ")})
		store.scale = max(store.scale, bytes, disk)
	}
	return []panel{rate, worker, server, store}
}

func esc(s string) string { return html.EscapeString(s) }
