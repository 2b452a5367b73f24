package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SoakOptions size a soak run: one worker, left running, fed Commands in
// rounds of Round, with every guarantee on (per-chat order, the idempotency
// store, results, dead letters), against a NATS server whose streams keep
// everything the run wrote.
type SoakOptions struct {
	Commands    int // in all (default 500,000)
	Round       int // per round (default 50,000)
	Concurrency int // the worker's (default 64, as `worker run`)
	Chats       int // commands spread round-robin over this many chats (default 1000)
	// WorkerBinary is the `worker` executable. With it, the worker runs as
	// `worker run` and the NATS server as `worker bench --serve-nats`, each
	// in its own process, so each one's RSS and goroutines are its own.
	// Empty: both run in this process, where the server's memory cannot be
	// told apart from the rest and only the whole process is measured.
	WorkerBinary string
	// Stall fails the run when no command completes for this long (default
	// 2 minutes): a soak on a shared machine is slow, but never still.
	Stall time.Duration
}

func (o SoakOptions) withDefaults() SoakOptions {
	if o.Commands <= 0 {
		o.Commands = 500000
	}
	if o.Round <= 0 {
		o.Round = min(50000, o.Commands)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = consumer.DefaultConcurrency
	}
	if o.Chats <= 0 {
		o.Chats = 1000
	}
	if o.Stall <= 0 {
		o.Stall = 2 * time.Minute
	}
	return o
}

// Layouts of a soak run.
const (
	LayoutProcesses = "processes" // worker and NATS server each in its own process
	LayoutInProcess = "in-process"
)

// SoakResult is a whole soak run. Memory and store figures are measured at
// each round's end, and the store's are cumulative: nothing expires during
// a run (idempotency records live 24 hours, results 7 days).
type SoakResult struct {
	Layout      string `json:"layout"`
	Commands    int    `json:"commands"`
	Round       int    `json:"round_size"`
	Concurrency int    `json:"concurrency"`
	Chats       int    `json:"chats"`
	// WorkerRSSStart and ServerRSSStart are measured once the worker
	// consumes and before the first command: the baseline of the growth.
	WorkerRSSStart uint64      `json:"worker_rss_start"`
	ServerRSSStart uint64      `json:"server_rss_start,omitempty"`
	Rounds         []SoakRound `json:"rounds"`
	Dead           int         `json:"dead"`       // dead letters (expected 0)
	Duplicates     int         `json:"duplicates"` // results beyond one per command (expected 0)
	// RateLastOverFirst is the last round's rate over the first's (target
	// at least 0.85).
	RateLastOverFirst float64 `json:"rate_last_over_first"`
	// ServerRSSPerCommand is the server's RSS growth from the start to the
	// last round's end, per command (0 in-process).
	ServerRSSPerCommand float64 `json:"server_rss_per_command,omitempty"`
}

// SoakRound is what one round measured.
type SoakRound struct {
	Round    int `json:"round"`
	Commands int `json:"commands"` // completed so far, this round's included
	// Elapsed is from the round's first publish to its last result; the
	// worker consumes while the round is published, as in production.
	Elapsed time.Duration `json:"elapsed"`
	Rate    float64       `json:"rate"` // this round's commands / Elapsed
	// Worker figures are of the worker process, or in-process of this whole
	// process (worker, NATS server, simulator, harness).
	WorkerRSS        uint64        `json:"worker_rss"`      // at the round's end
	WorkerPeakRSS    uint64        `json:"worker_peak_rss"` // during the round
	WorkerGoroutines int           `json:"worker_goroutines"`
	WorkerCPUPerCmd  time.Duration `json:"worker_cpu_per_cmd"`
	ServerRSS        uint64        `json:"server_rss,omitempty"` // 0: in this process, not separable
	ServerPeakRSS    uint64        `json:"server_peak_rss,omitempty"`
	Streams          []StreamUsage `json:"streams"`
}

// StreamUsage is one stream's store at a round's end.
type StreamUsage struct {
	Stream string `json:"stream"`
	Msgs   uint64 `json:"msgs"`
	Bytes  uint64 `json:"bytes"` // JetStream's count of the messages held (State.Bytes)
	// Disk is the size of the stream's directory in the store: message
	// blocks with the space of deleted messages not yet compacted, and
	// indexes.
	Disk uint64 `json:"disk"`
}

// PerCommand divides a byte count by the commands completed so far.
func (r SoakRound) PerCommand(b uint64) float64 {
	if r.Commands == 0 {
		return 0
	}
	return float64(b) / float64(r.Commands)
}

// Soak runs one worker over o.Commands commands in rounds, reporting each
// round to progress as it ends (nil: quiet). It fails if a command is lost,
// doubled or dead-lettered: the figures are only worth having with every
// guarantee kept.
func Soak(ctx context.Context, o SoakOptions, progress func(SoakRound)) (SoakResult, error) {
	o = o.withDefaults()
	if o.Round > o.Commands {
		return SoakResult{}, fmt.Errorf("bench: soak round of %d is larger than the %d commands in all", o.Round, o.Commands)
	}
	res := SoakResult{Layout: LayoutInProcess, Commands: o.Commands, Round: o.Round, Concurrency: o.Concurrency, Chats: o.Chats}
	if o.WorkerBinary != "" {
		res.Layout = LayoutProcesses
	}
	dir, err := os.MkdirTemp("", "chatworker-soak-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	sim := httptest.NewServer(chatsim.New(chatsim.Config{Seed: 1}))
	defer sim.Close()
	defer sim.CloseClientConnections()
	api := sim.URL + "/chat/v1"

	// The NATS server: its own process, or this one.
	var (
		natsURL   string
		serverPID func() []int
		inProcNS  *server.Server
	)
	if o.WorkerBinary != "" {
		p, url, err := startNATSProc(o.WorkerBinary, dir)
		if err != nil {
			return res, err
		}
		defer func() { _ = p.stop() }()
		natsURL, serverPID = url, p.pids
	} else {
		ns, err := server.NewServer(natsOptions(dir))
		if err != nil {
			return res, err
		}
		go ns.Start()
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		if !ns.ReadyForConnections(10 * time.Second) {
			return res, errNotReady
		}
		natsURL, inProcNS = ns.ClientURL(), ns
	}

	nc, err := nats.Connect(natsURL, nats.Name("bench soak publisher"))
	if err != nil {
		return res, err
	}
	defer nc.Close()
	rc, err := nats.Connect(natsURL, nats.Name("bench soak results"))
	if err != nil {
		return res, err
	}
	defer rc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return res, err
	}
	topo := consumer.Topology{MaxAckPending: consumer.MaxAckPendingFor(o.Concurrency)}
	cons, err := consumer.Provision(ctx, js, topo)
	if err != nil {
		return res, err
	}
	topo = topo.WithDefaults()

	cnt := &soakCounter{start: time.Now(), seen: make([]atomic.Bool, o.Commands)}
	sub, err := rc.Subscribe(topo.Subjects.ResultsFilter(), func(m *nats.Msg) {
		if i, ok := commandIndex(m.Header.Get(nats.MsgIdHdr)); ok {
			cnt.result(i)
		}
	})
	if err != nil {
		return res, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	dsub, err := rc.Subscribe(topo.Subjects.DeadLettersFilter(), func(*nats.Msg) { cnt.dead.Add(1) })
	if err != nil {
		return res, err
	}
	_ = dsub.SetPendingLimits(-1, -1)
	if err := rc.Flush(); err != nil {
		return res, err
	}

	// The worker: its own process, or this one.
	var (
		workerPID  func() []int
		goroutines func() int
		cpu        func() time.Duration
		stopWorker func() error
	)
	if o.WorkerBinary != "" {
		addr, err := freeAddr()
		if err != nil {
			return res, err
		}
		p, err := startSoakWorker(o.WorkerBinary, natsURL, api, addr, o.Concurrency)
		if err != nil {
			return res, err
		}
		stopWorker, workerPID = p.stop, p.pids
		goroutines = func() int { return scrapeGoroutines(ctx, addr) }
		cpu = func() time.Duration { return procCPU(p.pids()[0]) }
	} else {
		e := &env{ns: inProcNS, api: api}
		sc := Scenario{Mode: ModeWorker, Concurrency: o.Concurrency}
		if stopWorker, err = startWorker(ctx, e, sc, topo, nil, nil); err != nil {
			return res, err
		}
		goroutines, cpu = runtime.NumGoroutine, selfCPU
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stopWorker()
		}
	}()
	if err := waitReady(ctx, cons, 1); err != nil {
		return res, err
	}
	res.WorkerRSSStart = rssOf(workerPID)
	if serverPID != nil {
		res.ServerRSSStart = rssOf(serverPID)
	}

	pub := newPublisher(js, topo.Subjects, Scenario{Commands: o.Commands, Chats: o.Chats})
	streams := []string{topo.CommandsStream, topo.ResultsStream, "KV_" + idempotency.DefaultBucket, topo.DeadLettersStream}
	for from, round := 0, 1; from < o.Commands; from, round = from+o.Round, round+1 {
		to := min(from+o.Round, o.Commands)
		workerSmp := startSampler(workerPID)
		var serverSmp *sampler
		if serverPID != nil {
			serverSmp = startSampler(serverPID)
		}
		cpu0 := cpu()
		start := time.Since(cnt.start)
		err := pub.publish(ctx, from, to, nil)
		if err == nil {
			err = cnt.waitFor(ctx, to, o.Stall)
		}
		r := SoakRound{Round: round, Commands: int(cnt.count.Load())}
		r.WorkerPeakRSS, _ = workerSmp.finish()
		if serverSmp != nil {
			r.ServerPeakRSS, _ = serverSmp.finish()
		}
		if err != nil {
			return res, fmt.Errorf("soak round %d: %d of %d commands done: %w", round, r.Commands, o.Commands, err)
		}
		r.Elapsed = time.Duration(cnt.lastNS.Load()) - start
		if r.Elapsed > 0 {
			r.Rate = float64(to-from) / r.Elapsed.Seconds()
		}
		r.WorkerCPUPerCmd = (cpu() - cpu0) / time.Duration(to-from)
		r.WorkerRSS, r.WorkerGoroutines = rssOf(workerPID), goroutines()
		if serverPID != nil {
			r.ServerRSS = rssOf(serverPID)
		}
		for _, name := range streams {
			u, err := streamUsage(ctx, js, dir, name)
			if err != nil {
				return res, err
			}
			r.Streams = append(r.Streams, u)
		}
		res.Rounds = append(res.Rounds, r)
		if progress != nil {
			progress(r)
		}
	}
	stopped = true
	stopErr := stopWorker()

	res.Dead, res.Duplicates = int(cnt.dead.Load()), int(cnt.dups.Load())
	first, last := res.Rounds[0], res.Rounds[len(res.Rounds)-1]
	if first.Rate > 0 {
		res.RateLastOverFirst = last.Rate / first.Rate
	}
	if res.ServerRSSStart > 0 && last.Commands > 0 {
		res.ServerRSSPerCommand = (float64(last.ServerRSS) - float64(res.ServerRSSStart)) / float64(last.Commands)
	}
	if stopErr != nil {
		return res, fmt.Errorf("stopping the worker: %w", stopErr)
	}
	return res, checkSoak(ctx, js, topo, res)
}

// checkSoak fails unless every command has exactly one result, none was
// dead-lettered, and the work queue is empty (each command acknowledged).
func checkSoak(ctx context.Context, js jetstream.JetStream, topo consumer.Topology, res SoakResult) error {
	var errs []error
	if res.Dead > 0 {
		errs = append(errs, fmt.Errorf("%d dead letters", res.Dead))
	}
	if res.Duplicates > 0 {
		errs = append(errs, fmt.Errorf("%d duplicate results", res.Duplicates))
	}
	for _, want := range []struct {
		stream string
		msgs   uint64
	}{{topo.ResultsStream, uint64(res.Commands)}, {topo.CommandsStream, 0}} {
		s, err := js.Stream(ctx, want.stream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != want.msgs {
			errs = append(errs, fmt.Errorf("%s holds %d messages, want %d", want.stream, info.State.Msgs, want.msgs))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: soak broke a guarantee: %w", errors.Join(errs...))
	}
	return nil
}

// soakCounter records the results as they arrive.
type soakCounter struct {
	start  time.Time
	seen   []atomic.Bool
	count  atomic.Int64
	dups   atomic.Int64
	dead   atomic.Int64
	lastNS atomic.Int64 // the latest first result, ns since start
}

func (c *soakCounter) result(i int) {
	if i >= len(c.seen) {
		return
	}
	if c.seen[i].Swap(true) {
		c.dups.Add(1)
		return
	}
	ns := int64(time.Since(c.start))
	for {
		last := c.lastNS.Load()
		if ns <= last || c.lastNS.CompareAndSwap(last, ns) {
			break
		}
	}
	c.count.Add(1)
}

// waitFor waits until n commands have their result, failing when none
// completes for stall.
func (c *soakCounter) waitFor(ctx context.Context, n int, stall time.Duration) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	seen, moved := c.count.Load(), time.Now()
	for {
		now := c.count.Load()
		if now >= int64(n) {
			return nil
		}
		if now != seen {
			seen, moved = now, time.Now()
		} else if time.Since(moved) > stall {
			return fmt.Errorf("no command completed for %v", stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// streamUsage reads a stream's state from JetStream and its size from the
// store directory of the server (the account is the default one, $G).
func streamUsage(ctx context.Context, js jetstream.JetStream, storeDir, name string) (StreamUsage, error) {
	u := StreamUsage{Stream: name}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return u, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return u, fmt.Errorf("stream %s: %w", name, err)
	}
	u.Msgs, u.Bytes = info.State.Msgs, info.State.Bytes
	u.Disk = dirSize(filepath.Join(storeDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", name))
	return u, nil
}

// dirSize sums the sizes of the files under dir (0 if there is none).
func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file compacted away while walking
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// rssOf is the summed RSS of the processes, or of this one (pids nil).
func rssOf(pids func() []int) uint64 {
	if pids == nil {
		return procStatus(os.Getpid(), "VmRSS:")
	}
	var n uint64
	for _, pid := range pids() {
		n += procStatus(pid, "VmRSS:")
	}
	return n
}

// ServeNATS runs the bench's NATS server (file storage in dir, a free port
// on loopback) until ctx ends, after writing "nats-url URL" on a line to
// stdout: `worker bench --serve-nats` runs it so that a soak can measure
// the server in a process of its own.
func ServeNATS(ctx context.Context, dir string, stdout io.Writer) error {
	ns, err := server.NewServer(natsOptions(dir))
	if err != nil {
		return err
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errNotReady
	}
	if _, err := fmt.Fprintf(stdout, "nats-url %s\n", ns.ClientURL()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startNATSProc starts `bin bench --serve-nats dir` and waits for the URL
// it listens on.
func startNATSProc(bin, dir string) (*procs, string, error) {
	cmd := exec.Command(bin, "bench", "--serve-nats", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start the NATS server process: %w", err)
	}
	p := &procs{}
	p.add(cmd, &stderr)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "nats-url "); ok {
				urls <- url
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(urls)
	}()
	select {
	case url, ok := <-urls:
		if ok {
			return p, url, nil
		}
	case <-time.After(30 * time.Second):
	}
	err = p.stop()
	return nil, "", fmt.Errorf("the NATS server process did not start: %v", err)
}

// startSoakWorker starts `bin run` against the server and the simulator,
// serving /metrics on addr.
func startSoakWorker(bin, natsURL, api, addr string, concurrency int) (*procs, error) {
	cmd := exec.Command(bin, "run", "--nats-url", natsURL, "--chat-api-url", api, "--http-addr", addr,
		"--concurrency", strconv.Itoa(concurrency), "--log-level", "error", "--shutdown-grace", "5s")
	cmd.Env = append(os.Environ(), "GOSQUARED_API_KEY="+apiKey, "GOSQUARED_SITE_TOKEN="+siteToken)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the worker: %w", err)
	}
	p := &procs{}
	p.add(cmd, &stderr)
	return p, nil
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrapeGoroutines reads go_goroutines from the worker's /metrics (0 if it
// cannot).
func scrapeGoroutines(ctx context.Context, addr string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return 0
}

// WriteSoakTable prints a soak run as a Markdown table, a row per round,
// and what it means against the targets.
func WriteSoakTable(w io.Writer, res SoakResult) {
	who, server := "worker process", "NATS server process"
	if res.Layout == LayoutInProcess {
		who, server = "this process (worker, NATS server, simulator, harness)", "in this process: not measured apart"
	}
	fmt.Fprintf(w, "\nSoak: one worker (concurrency %d, per-chat order, idempotency store, results), %d commands over %d chats in rounds of %d; worker: %s; NATS server: %s. Bytes per command: JetStream's count (State.Bytes) / the store directory on disk, cumulative.\n\n",
		res.Concurrency, res.Commands, res.Chats, res.Round, who, server)
	head := "| round | commands | cmd/s | of round 1 | worker RSS | worker peak | goroutines | worker CPU/cmd | NATS RSS | NATS peak | CHAT_RESULTS B/cmd | KV_CHAT_IDEMPOTENCY B/cmd | CHAT_COMMANDS B/cmd |"
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, tabbed(head))
	fmt.Fprintln(tw, tabbed(separator(head)))
	var first float64
	for i, r := range res.Rounds {
		if i == 0 {
			first = r.Rate
		}
		perCmd := func(name string) string {
			for _, s := range r.Streams {
				if s.Stream == name {
					return fmt.Sprintf("%.0f / %.0f", r.PerCommand(s.Bytes), r.PerCommand(s.Disk))
				}
			}
			return "-"
		}
		fmt.Fprintln(tw, tabbed(fmt.Sprintf("| %d | %d | %.0f | %s | %s | %s | %d | %.0f µs | %s | %s | %s | %s | %s |",
			r.Round, r.Commands, r.Rate, ratio(r.Rate, first), mib(r.WorkerRSS), mib(r.WorkerPeakRSS), r.WorkerGoroutines,
			float64(r.WorkerCPUPerCmd)/float64(time.Microsecond), mib(r.ServerRSS), mib(r.ServerPeakRSS),
			perCmd("CHAT_RESULTS"), perCmd("KV_"+idempotency.DefaultBucket), perCmd("CHAT_COMMANDS"))))
	}
	tw.Flush()
	if len(res.Rounds) == 0 {
		return
	}
	last := res.Rounds[len(res.Rounds)-1]
	fmt.Fprintf(w, "\n- Rate: the last round made %s of the first's (target at least 85%%).\n", ratio(last.Rate, res.Rounds[0].Rate))
	fmt.Fprintf(w, "- Worker memory (%s): %s once consuming, %s after round 1, %s after the last round.\n",
		who, mib(res.WorkerRSSStart), mib(res.Rounds[0].WorkerRSS), mib(last.WorkerRSS))
	if res.ServerRSSStart > 0 {
		fmt.Fprintf(w, "- NATS server memory: %s at the start, %s after %d commands: %.0f bytes per command.\n",
			mib(res.ServerRSSStart), mib(last.ServerRSS), last.Commands, res.ServerRSSPerCommand)
	}
	fmt.Fprintf(w, "- Guarantees: %d results for %d commands, %d duplicates, %d dead letters.\n",
		last.Commands, res.Commands, res.Duplicates, res.Dead)
}
