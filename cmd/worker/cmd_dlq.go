package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/dlq"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

const dlqUsage = `dlq <command> [flags]

Commands:
  ls       list dead letters (a table, or --json)
  show     print one dead letter in full: dlq show SEQ|ID
  replay   republish dead letters to their command subjects, then remove them
  purge    delete dead letters (asks first; --yes to skip the question)

Filters (ls, replay, purge): --project, --class, --type, --chat, --id, --since, --until, --limit.
Run 'worker dlq <command> -h' for a command's flags.
`

// runDLQ inspects, replays and purges dead letters.
func runDLQ(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: worker "+dlqUsage)
		return usageError{helpHint{errors.New("dlq: no command given: want ls, show, replay or purge"), "dlq"}}
	}
	d := &dlqCmd{stdin: stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "ls", "list":
		return d.ls(ctx, args[1:])
	case "show":
		return d.show(ctx, args[1:])
	case "replay":
		return d.replay(ctx, args[1:])
	case "purge":
		return d.purge(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, "usage: worker "+dlqUsage)
		return nil
	}
	err := fmt.Errorf("dlq: unknown command %q: want ls, show, replay or purge", args[0])
	if near := closest(args[0], []string{"ls", "show", "replay", "purge"}); near != "" {
		err = fmt.Errorf("dlq: unknown command %q (did you mean %s?)", args[0], near)
	}
	return usageError{helpHint{err, "dlq"}}
}

type dlqCmd struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	nats           natsFlags
	filter         dlq.Values
	project        projectFlag
	js             jetstream.JetStream // set by open, for the audit log
}

func (d *dlqCmd) flags(name, usage string, withFilter bool) *flagSet {
	fs := newFlagSet("dlq "+name, "dlq "+usage, d.stderr)
	d.nats.registerConn(fs)
	d.project.register(fs, true)
	if withFilter {
		fs.String(&d.filter.Class, "class", "", "", "only these classes: "+dlq.ClassList()+" (comma separated)")
		fs.String(&d.filter.Type, "type", "", "", "only these command types: "+dlq.TypeList()+" (comma separated)")
		fs.String(&d.filter.Chat, "chat", "", "", "only this chat ID")
		fs.String(&d.filter.ID, "id", "", "", "only this command id")
		fs.When(&d.filter.Since, "since", "only dead since: a time (2026-05-01, 2026-05-01T14:00:00Z) or how long ago (90m, 2h, 7d)")
		fs.When(&d.filter.Until, "until", "only dead before: a time or how long ago")
		fs.Int(&d.filter.Limit, "limit", "", 0, "at most this many, oldest first (0: all)")
	}
	return fs
}

func (d *dlqCmd) open(ctx context.Context) (*dlq.Queue, func(), error) {
	nc, js, err := d.nats.connect(ctx, "chatworker dlq", nil, zap.NewNop())
	if err != nil {
		return nil, nil, err
	}
	d.js = js
	topo := d.nats.topology().WithDefaults()
	q, err := dlq.Open(ctx, js, dlq.Config{Subjects: topo.Subjects, Stream: topo.DeadLettersStream, CommandsStream: topo.CommandsStream})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return q, nc.Close, nil
}

// selection opens the queue and lists what the filter selects.
func (d *dlqCmd) selection(ctx context.Context) (*dlq.Queue, dlq.Selection, dlq.Filter, func(), error) {
	d.filter.Project = d.project.name
	f, err := dlq.ParseFilter(d.filter, time.Now())
	if err != nil {
		return nil, dlq.Selection{}, f, nil, usageError{err}
	}
	q, closeFn, err := d.open(ctx)
	if err != nil {
		return nil, dlq.Selection{}, f, nil, err
	}
	sel, err := q.List(ctx, f)
	if err != nil {
		closeFn()
		return nil, dlq.Selection{}, f, nil, err
	}
	return q, sel, f, closeFn, nil
}

// emptyError explains an empty selection.
func emptyError(ctx context.Context, q *dlq.Queue, f dlq.Filter) error {
	n, err := q.Count(ctx)
	if err != nil {
		return fmt.Errorf("%w %s", dlq.ErrEmpty, f)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s is empty", dlq.ErrEmpty, q.Stream())
	}
	return fmt.Errorf("%w %s (%s holds %d dead letters; `worker dlq ls` lists them)", dlq.ErrEmpty, f, q.Stream(), n)
}

func (d *dlqCmd) ls(ctx context.Context, args []string) error {
	var asJSON bool
	fs := d.flags("ls", "ls [filters] [--json]", true)
	fs.Bool(&asJSON, "json", "", false, "print a JSON array of dead letters, in full")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq ls: unexpected argument %q (for one dead letter: worker dlq show %s)", fs.Arg(0), fs.Arg(0))}
	}
	q, sel, f, closeFn, err := d.selection(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if asJSON {
		if sel.Entries == nil {
			sel.Entries = []dlq.Entry{}
		}
		return printIndented(d.stdout, sel.Entries)
	}
	if len(sel.Entries) == 0 {
		fmt.Fprintln(d.stderr, emptyError(ctx, q, f))
		return nil
	}
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD AT (UTC)\tCLASS\tPROJECT\tTYPE\tCHAT\tID\tATTEMPTS\tERROR")
	for _, e := range sel.Entries {
		class := string(e.Class())
		if e.Malformed != "" {
			class = "?"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Seq, e.Time().UTC().Format("2006-01-02 15:04:05"), dashIfEmpty(class), dashIfEmpty(e.Project), dashIfEmpty(e.Type),
			dashIfEmpty(short(e.ChatID, 32)), dashIfEmpty(short(e.ID, 36)), e.Letter.Attempts, short(errText(e), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if sel.Matched > len(sel.Entries) {
		fmt.Fprintf(d.stderr, "%d of %d matching dead letters shown (--limit %d)\n", len(sel.Entries), sel.Matched, f.Limit)
	}
	return nil
}

// errText is why the dead letter died: the cause, which is what a long
// message would lose when cut to the column's width.
func errText(e dlq.Entry) string {
	if e.Malformed != "" {
		return oneLine(e.Malformed)
	}
	return deadLetterCause(e.Letter.Error)
}

func (d *dlqCmd) show(ctx context.Context, args []string) error {
	var asJSON bool
	fs := d.flags("show", "show SEQ|ID [--json]", false)
	fs.Bool(&asJSON, "json", "", false, "print the dead letter as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) != 1 {
		return usageError{errors.New("dlq show: want one stream sequence or command id, such as `worker dlq show 42`")}
	}
	q, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	e, err := q.GetIn(ctx, d.project.name, pos[0])
	if err != nil {
		return err
	}
	if asJSON {
		return printIndented(d.stdout, e)
	}
	printEntry(d.stdout, q.Stream(), e)
	return nil
}

func printEntry(w io.Writer, stream string, e dlq.Entry) {
	l := e.Letter
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("Sequence", "%d in %s", e.Seq, stream)
	row("Subject", "%s", e.Subject)
	row("Dead at", "%s (stored %s)", e.Time().UTC().Format(time.RFC3339), e.StoredAt.UTC().Format(time.RFC3339))
	if e.Malformed != "" {
		row("Malformed", "%s", e.Malformed)
	}
	row("Command id", "%s", dashIfEmpty(e.ID))
	if e.Project != "" {
		row("Project", "%s", e.Project)
	}
	row("Type", "%s", dashIfEmpty(e.Type))
	row("Chat", "%s", dashIfEmpty(e.ChatID))
	row("Class", "%s", dashIfEmpty(string(l.Error.Class)))
	row("Error", "%s", oneLine(l.Error.Message))
	if l.Error.APIStatus != 0 {
		row("API status", "%d (code %d)", l.Error.APIStatus, l.Error.APICode)
	}
	row("Attempts", "%d", l.Attempts)
	if l.FirstAttemptAt != nil && l.LastAttemptAt != nil {
		row("Attempted", "%s to %s", l.FirstAttemptAt.UTC().Format(time.RFC3339), l.LastAttemptAt.UTC().Format(time.RFC3339))
	}
	row("Worker", "%s", dashIfEmpty(l.Worker))
	if l.Stream != "" {
		row("Command", "%s, sequence %d in %s", l.Subject, l.Sequence, l.Stream)
	} else {
		row("Command", "%s", l.Subject)
	}
	for k, vs := range l.Headers {
		row("Header", "%s: %s", k, strings.Join(vs, ", "))
	}
	_ = tw.Flush()
	switch {
	case len(l.Command) > 0:
		b, err := json.MarshalIndent(l.Command, "", "  ")
		if err != nil {
			b = l.Command
		}
		fmt.Fprintf(w, "\n%s\n", b)
	case len(l.Raw) > 0:
		fmt.Fprintf(w, "\nRaw command (not JSON, %d bytes):\n%q\n", len(l.Raw), l.Raw)
	}
}

func (d *dlqCmd) replay(ctx context.Context, args []string) error {
	var opts dlq.ReplayOptions
	fs := d.flags("replay", "replay [filters] [--rate N] [--dry-run] [--include-invalid]", true)
	fs.Float(&opts.Rate, "rate", "WORKER_DLQ_REPLAY_RATE", 10, "most commands republished per second (0: no cap)")
	fs.Bool(&opts.DryRun, "dry-run", "", false, "say what would be replayed, change nothing")
	fs.Bool(&opts.IncludeInvalid, "include-invalid", "", false, "replay dead letters of class invalid too (they usually fail again)")
	var notAfter string
	fs.String(&notAfter, "not-after", "", "", "give every replayed command this deadline: an RFC 3339 time, or a duration from now")
	if err := fs.parse(args); err != nil {
		return err
	}
	if notAfter != "" {
		var err error
		if opts.NotAfter, err = parseDeadline(notAfter, time.Now()); err != nil {
			return usageError{err}
		}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq replay: unexpected argument %q (select with --id and the other filters)", fs.Arg(0))}
	}
	if opts.Rate < 0 {
		return usageError{fmt.Errorf("--rate %v: want 0 (no cap) or more", opts.Rate)}
	}
	q, sel, f, closeFn, err := d.selection(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if len(sel.Entries) == 0 {
		return emptyError(ctx, q, f)
	}
	if opts.NotAfter.IsZero() {
		warnPastDeadline(d.stdout, sel.Entries, opts.DryRun)
	}
	p := newProgress(d.stdout, isTerminal(d.stdout))
	opts.Progress = p.step
	start := time.Now()
	c, err := q.Replay(ctx, sel.Entries, opts)
	p.finish()
	verb := "replayed"
	if opts.DryRun {
		verb = "would replay"
	}
	fmt.Fprintf(d.stdout, "%s %d of %d selected dead letters (%d already republished by an earlier run), skipped %d, in %s\n",
		verb, c.Replayed, len(sel.Entries), c.Already, c.Skipped, time.Since(start).Round(time.Millisecond))
	if !opts.DryRun && c.Replayed > 0 {
		auditCLI(ctx, d.js, d.nats.subjects(), d.stderr, audit.Entry{Action: audit.Replay, Which: f.String(), Count: c.Replayed, Detail: fmt.Sprintf("skipped %d, rate %g/s", c.Skipped, opts.Rate)})
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("replay interrupted after %d; the rest are still in %s and running the replay again is safe", c.Replayed+c.Skipped, q.Stream())
	}
	return err
}

func (d *dlqCmd) purge(ctx context.Context, args []string) error {
	var yes bool
	fs := d.flags("purge", "purge [filters] [--yes]", true)
	fs.Bool(&yes, "yes", "", false, "do not ask for confirmation")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq purge: unexpected argument %q (select with --id and the other filters)", fs.Arg(0))}
	}
	q, sel, f, closeFn, err := d.selection(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if len(sel.Entries) == 0 {
		return emptyError(ctx, q, f)
	}
	if !yes {
		fmt.Fprintf(d.stdout, "Delete %d dead letters (%s) from %s? [y/N] ", len(sel.Entries), f, q.Stream())
		answer, _ := bufio.NewReader(d.stdin).ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(answer)) {
		case "y", "yes":
		default:
			fmt.Fprintln(d.stdout, "nothing deleted")
			return nil
		}
	}
	n, err := q.Purge(ctx, sel.Entries)
	if n > 0 {
		auditCLI(ctx, d.js, d.nats.subjects(), d.stderr, audit.Entry{Action: audit.Purge, Which: f.String(), Count: n})
	}
	fmt.Fprintf(d.stdout, "deleted %d dead letters from %s\n", n, q.Stream())
	return err
}

// progress prints a replay's progress: a bar redrawn in place on a
// terminal, one line per dead letter otherwise.
type progress struct {
	w   io.Writer
	bar *progressBar // nil when w is not a terminal
}

func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{w: w}
	if tty {
		p.bar = &progressBar{w: w}
	}
	return p
}

func (p *progress) step(s dlq.Step) {
	if p.bar == nil {
		line := fmt.Sprintf("%-12s seq=%d class=%s type=%s chat=%s id=%s", s.Action, s.Entry.Seq, dashIfEmpty(string(s.Entry.Class())), dashIfEmpty(s.Entry.Type), dashIfEmpty(s.Entry.ChatID), dashIfEmpty(s.Entry.ID))
		if s.Reason != "" {
			line += ": " + s.Reason
		}
		fmt.Fprintln(p.w, line)
		return
	}
	if s.Action == dlq.Skipped {
		p.bar.println(fmt.Sprintf("skipped seq=%d id=%s: %s", s.Entry.Seq, dashIfEmpty(s.Entry.ID), s.Reason))
	}
	rate := float64(s.Done) / max(s.Elapsed.Seconds(), 1e-3)
	eta := "--"
	if s.Done > 0 && s.Done < s.Total {
		eta = (time.Duration(float64(s.Total-s.Done)/rate*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
	} else if s.Done == s.Total {
		eta = "0s"
	}
	p.bar.draw(s.Done, s.Total, fmt.Sprintf("%d/%d  replayed %d  skipped %d  %.1f/s  ETA %s", s.Done, s.Total, s.Counts.Replayed, s.Counts.Skipped, rate, eta))
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.finish()
	}
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// warnPastDeadline says, before a replay, which commands will expire again.
func warnPastDeadline(w io.Writer, entries []dlq.Entry, dryRun bool) {
	n, now := 0, time.Now()
	for _, e := range entries {
		if e.PastDeadline(now) {
			n++
		}
	}
	if n == 0 {
		return
	}
	will := "will"
	if dryRun {
		will = "would"
	}
	fmt.Fprintf(w, "%d of the %d selected commands are past their not_after deadline: replayed, they %s expire again without an API call; --not-after TIME|DURATION gives them a new deadline\n", n, len(entries), will)
}
