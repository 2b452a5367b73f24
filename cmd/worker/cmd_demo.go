package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
)

// runDemo runs everything in one process: embedded NATS, the chat API
// simulator (with a few injected failures) and the worker. It publishes
// sample commands, one of them malformed, prints what becomes of each, and
// exits.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The demo is self-contained: no variables, and flags only for what it
	// shows; the worker's other settings are their defaults.
	f := defaultWorkerFlags()
	f.log.level = "error" // the demo prints what happens itself
	f.httpAddr = ""
	var timeout time.Duration
	fs := newFlagSet("demo", "demo [flags]", stderr)
	fs.Duration(&timeout, "timeout", "", time.Minute, "give up when the sample commands have not all finished by then")
	fs.String(&f.log.level, "log-level", "", f.log.level, "the worker's log level: debug, info, warn, error")
	fs.String(&f.log.format, "log-format", "", f.log.format, "log format: json, console, or auto (console on a terminal, JSON otherwise)")
	fs.String(&f.httpAddr, "http-addr", "", f.httpAddr, "address for /metrics, /healthz and /readyz while the demo runs (empty: off)")
	fs.check(func() []error {
		if _, err := f.log.logger(io.Discard); err != nil {
			return []error{err}
		}
		return nil
	})
	if err := fs.parse(args); err != nil {
		return err
	}
	f.concurrency = min(f.concurrency, 8)
	f.retry.InitialInterval = 50 * time.Millisecond
	log, err := f.log.logger(stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "chatworker-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	embedded, err := startEmbedded("127.0.0.1", -1, dir, log)
	if err != nil {
		return err
	}

	// The simulator fails a quarter of the calls with 503, so some commands
	// show retries.
	sim := chatsim.New(chatsim.Config{
		HonourIdempotencyKey: true,
		Seed:                 2,
		Faults:               chatsim.Faults{ErrorRate: 0.25, Latency: 5 * time.Millisecond},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		embedded.Shutdown()
		return err
	}
	simSrv := &http.Server{Handler: failFirst(sim, "visitor-503", 2), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = simSrv.Serve(ln) }()
	defer simSrv.Close()
	f.apiURL = "http://" + ln.Addr().String() + "/chat/v1"

	creds := chat.Credentials{APIKey: "demo-key", SiteToken: "GSN-000000-DEMO"}
	a, err := newApp(ctx, &f, log, creds, embedded)
	if err != nil {
		embedded.Shutdown()
		return err
	}
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- a.run(workerCtx) }()
	defer func() { stopWorker(); <-workerDone }()

	records := make(chan *nats.Msg, 64)
	subjects := f.nats.subjects()
	for _, filter := range []string{subjects.ResultsFilter(), subjects.DeadLettersFilter()} {
		if _, err := a.nc.ChanSubscribe(filter, records); err != nil {
			return err
		}
	}

	fmt.Fprintf(stdout, "Demo: embedded NATS at %s, chat API simulator at %s (25%% of calls fail with 503; the first two for visitor-503 always do).\n\n", embedded.ClientURL(), f.apiURL)
	samples := []contract.Commander{
		contract.Send{ChatID: "email:jo@example.com", Content: "Hello Jo! Your order A-17 has shipped.", From: contract.FromAgent, Metadata: json.RawMessage(`{"order":"A-17"}`)},
		contract.Note{ChatID: "email:jo@example.com", Content: "Jo asked about delivery times; shipped by express."},
		contract.Send{ChatID: "visitor-42", Content: "Thanks for your message! An agent will reply soon.", From: contract.FromBot},
		contract.Archive{ChatID: "visitor-42"},
		contract.Send{ChatID: "missing:ghost", Content: "Is anyone there?"},
		contract.Send{ChatID: "visitor-503", Content: "Sorry for the wait!"},
		// Its moment passed before a worker took it: no call, class expired.
		contract.Send{ChatID: "visitor-7", Content: "Your payment failed: retry while you are here?", NotAfter: time.Now().Add(-time.Second)},
	}
	var first contract.Command
	fmt.Fprintln(stdout, "Publishing:")
	for i, s := range samples {
		cmd, err := actions.Publish(ctx, a.js, s, subjects)
		if err != nil {
			return err
		}
		if i == 0 {
			first = cmd
		}
		fmt.Fprintf(stdout, "  %-7s %-22s id=%s\n", cmd.Type, cmd.ChatID, cmd.ID)
	}
	// A malformed command, as an app with a typo would publish it.
	bad := `{"id":"bad-1","type":"send","chat_id":"visitor-42","contnet":"Hi!"}`
	if _, err := a.js.Publish(ctx, subjects.Command(contract.TypeSend, "visitor-42"), []byte(bad)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  %-7s %-22s id=bad-1 (malformed: %q is a typo of \"content\")\n", "send", "visitor-42", "contnet")
	// The first command again, as a new message (an app retrying its
	// publish after the duplicate window): the worker must not send it twice.
	again, _ := json.Marshal(first)
	msg := &nats.Msg{Subject: subjects.Command(first.Type, first.ChatID), Data: again, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, first.ID+"/republished")
	if _, err := a.js.PublishMsg(ctx, msg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  %-7s %-22s id=%s (the first command again)\n", first.Type, first.ChatID, first.ID)

	// A scheduled command: NATS keeps it and publishes it at its time.
	sched, err := actions.ScheduleAt(ctx, a.js, contract.Send{ChatID: "visitor-42", Content: "A day after sign-up: how is it going?",
		NotAfter: time.Now().Add(time.Hour)}, time.Now().Add(2*time.Second), subjects)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  %-7s %-22s id=%s (scheduled for %s, not after %s)\n", sched.Type, sched.ChatID, sched.ID,
		sched.At.Local().Format("15:04:05"), sched.NotAfter.Local().Format("15:04:05"))

	// A recurring command: a cron schedule in the visitor's zone that
	// matches two seconds from now, so it fires twice; each firing is its
	// own command, id <schedule id>@<due time>.
	loc, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		return err
	}
	t1, t2 := time.Now().Add(2*time.Second).In(loc), time.Now().Add(3*time.Second).In(loc)
	r := contract.Recurrence{Cron: fmt.Sprintf("%d,%d %d %d %d %d *", t1.Second(), t2.Second(), t1.Minute(), t1.Hour(), t1.Day(), t1.Month()), TZ: loc.String()}
	if t2.Minute() != t1.Minute() {
		r.Cron = fmt.Sprintf("%d %d %d %d %d *", t1.Second(), t1.Minute(), t1.Hour(), t1.Day(), t1.Month()) // one firing this year
	}
	recurring, err := actions.ScheduleRecurring(ctx, a.js, contract.Note{ChatID: "visitor-42", Content: "Daily check: anything open?"}, r, subjects)
	if err != nil {
		return err
	}
	defer func() { _, _ = actions.CancelSchedule(context.WithoutCancel(ctx), a.js, subjects, recurring.ID) }()
	firings := 2
	if t2.Minute() != t1.Minute() {
		firings = 1
	}
	fmt.Fprintf(stdout, "  %-7s %-22s id=%s (recurring: cron %q in %s, first at %s)\n", recurring.Type, recurring.ChatID, recurring.ID, r.Cron, r.TZ, recurring.At.Local().Format("15:04:05"))

	// Quiet hours: the visitor's clock is inside 21:00-08:00 somewhere;
	// the worker holds the command there until the window ends.
	quiet := quietSomewhere(time.Now())
	held, err := actions.Publish(ctx, a.js, contract.Send{ChatID: "visitor-9", Content: "Good morning! Your trial ends today.", QuietHours: &quiet}, subjects)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  %-7s %-22s id=%s (quiet hours %s-%s in %s: held until %s)\n", held.Type, held.ChatID, held.ID, quiet.Start, quiet.End, quiet.TZ,
		quiet.Until(time.Now()).Local().Format("15:04"))

	want := len(samples) + 3 + firings
	fmt.Fprintf(stdout, "\nWhat became of them:\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for got := 0; got < want; got++ {
		select {
		case m := <-records:
			line := describeRecord(m)
			if strings.HasSuffix(line, "id="+sched.ID) {
				line += fmt.Sprintf(" (scheduled for %s, ran at %s)", sched.At.Local().Format("15:04:05"), time.Now().Format("15:04:05.000"))
			}
			fmt.Fprintln(tw, line)
			tw.Flush()
		case <-ctx.Done():
			return fmt.Errorf("demo: only %d of %d commands finished within %v", got, want, timeout)
		}
	}
	if st, err := actions.Status(ctx, a.js, held.ID, subjects); err == nil {
		fmt.Fprintf(stdout, "\nThe quiet-hours command is %s: it runs when the visitor's quiet hours end.\n", st.State)
	}
	st := sim.Stats()
	fmt.Fprintf(stdout, "\nThe simulator applied %d effects for %d calls; every command that ran has exactly one result or dead letter.\n", len(sim.Effects()), st.Requests)
	fmt.Fprintln(stdout, "Next: `worker run` with GOSQUARED_API_KEY and GOSQUARED_SITE_TOKEN for the real API; see README.md.")
	return nil
}

// quietSomewhere is a 21:00-08:00 window in a zone where it is night at
// now, so the demo shows a hold whatever the hour.
func quietSomewhere(now time.Time) contract.QuietHours {
	for _, tz := range []string{"Pacific/Kiritimati", "Asia/Tokyo", "Asia/Kolkata", "Europe/London", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Pago_Pago"} {
		q := contract.QuietHours{Start: "21:00", End: "08:00", TZ: tz}
		if !q.Until(now).IsZero() {
			return q
		}
	}
	return contract.QuietHours{Start: "00:00", End: "23:59", TZ: "UTC"}
}

// describeRecord renders a result or dead letter as one tab-separated line.
func describeRecord(m *nats.Msg) string {
	if strings.Contains(m.Subject, ".results.") {
		var r contract.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return "result\t(unreadable: " + err.Error() + ")"
		}
		return fmt.Sprintf("  result\t%s\t%s\t%s\tattempts=%d\tHTTP %d\tid=%s", r.Type, r.ChatID, r.Status, r.Attempts, r.APIStatus, r.ID)
	}
	var d contract.DeadLetter
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return "dead letter\t(unreadable: " + err.Error() + ")"
	}
	var cmd contract.Command
	_ = json.Unmarshal(d.Command, &cmd)
	status := "-"
	if d.Error.APIStatus != 0 {
		status = fmt.Sprintf("HTTP %d", d.Error.APIStatus)
	}
	return fmt.Sprintf("  dead letter\t%s\t%s\t%s\tattempts=%d\t%s\tid=%s\t%s", orDash(string(cmd.Type)), orDash(cmd.ChatID), d.Error.Class, d.Attempts,
		status, orDash(deadLetterID(&d)), deadLetterCause(d.Error))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// failFirst answers the first n API calls for a chat whose path contains
// chat with 503, so the demo always shows a command retried.
func failFirst(next http.Handler, chat string, n int) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/"+chat+"/") {
			mu.Lock()
			fail := n > 0
			n--
			mu.Unlock()
			if fail {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"code":5000,"message":"injected by the demo"}`))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
