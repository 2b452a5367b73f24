package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/export"
	"go.uber.org/zap"
)

// exportFlags configure `worker export`.
type exportFlags struct {
	nats        natsFlags
	apiURL      string
	out         string
	bucket      string
	checkpoints string
	since       string
	until       string
	asJSON      bool
	concurrency int
	project     string
	// defaultProject is the default project's name, as `worker run` has it.
	defaultProject string
}

// exportCredentials are the credentials of the project named name: the
// default project's (GOSQUARED_API_KEY, GOSQUARED_SITE_TOKEN) when name is
// empty or the default's name, else its entry in GOSQUARED_PROJECTS.
func exportCredentials(name, defName string) (chat.Credentials, error) {
	creds, err := apiCredentials()
	if err != nil || name == "" || name == defName {
		return creds, err
	}
	if err := contract.CheckProjectName(name); err != nil {
		return chat.Credentials{}, usageError{fmt.Errorf("--project: %v", err)}
	}
	projects, err := apiProjects(creds, defName)
	if err != nil {
		return chat.Credentials{}, err
	}
	c, ok := projects[name]
	if !ok {
		return chat.Credentials{}, usageError{fmt.Errorf("--project %s: no such project in GOSQUARED_PROJECTS (entries NAME:SITE_TOKEN=API_KEY)", name)}
	}
	return c, nil
}

// runExport exports every conversation with something new since the last
// run to a file, a directory or an Object Store bucket (see export.Exporter).
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f exportFlags
	fs := newFlagSet("export", "export (--out PATH | --bucket NAME) [--since T] [--until T] [--json] [flags]", stderr)
	f.nats.registerServer(fs)
	f.nats.registerReplicas(fs)
	fs.String(&f.apiURL, "chat-api-url", "CHAT_API_URL", chat.DefaultBaseURL, "Chat API base URL")
	fs.String(&f.out, "out", "WORKER_EXPORT_OUT", "", "export to this directory (a file per run) or .jsonl file (appended to); the checkpoint is kept beside it")
	fs.String(&f.bucket, "bucket", "WORKER_EXPORT_BUCKET", "", "export to this NATS Object Store bucket (an object per conversation per run), checkpoints in --checkpoint-bucket")
	fs.String(&f.checkpoints, "checkpoint-bucket", "WORKER_EXPORT_CHECKPOINT_BUCKET", export.DefaultCheckpointsBucket, "NATS key-value bucket of the checkpoints (with --bucket)")
	fs.When(&f.since, "since", "only items from: a time (2026-05-01, 2026-05-01T14:00:00Z) or how long ago (90m, 2h, 7d)")
	fs.When(&f.until, "until", "only items up to: a time or how long ago")
	fs.Bool(&f.asJSON, "json", "", false, "print the summary as JSON (progress goes to stderr)")
	fs.Int(&f.concurrency, "concurrency", "WORKER_EXPORT_CONCURRENCY", export.DefaultConcurrency, "conversations fetched at once (the API's rate limit sets the pace)")
	fs.String(&f.project, "project", "WORKER_PROJECT", "", "export this project's conversations, with its key from GOSQUARED_PROJECTS (NAME:SITE_TOKEN=API_KEY); without it, or with the default project's name (--default-project), the default project's (GOSQUARED_API_KEY); give each project its own --out or --bucket and --checkpoint-bucket")
	fs.String(&f.defaultProject, "default-project", "WORKER_DEFAULT_PROJECT", contract.DefaultProject, "the name of the default project, as the workers are told it")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("export: unexpected argument %q", fs.Arg(0))}
	}
	now := time.Now()
	var opt export.Options
	var errs []error
	var err error
	if opt.Since, err = parseWhen("--since", f.since, now); err != nil {
		errs = append(errs, err)
	}
	if opt.Until, err = parseWhen("--until", f.until, now); err != nil {
		errs = append(errs, err)
	}
	if !opt.Since.IsZero() && !opt.Until.IsZero() && opt.Until.Before(opt.Since) {
		errs = append(errs, fmt.Errorf("--until %s is before --since %s", f.until, f.since))
	}
	if (f.out == "") == (f.bucket == "") {
		errs = append(errs, errors.New("say where to export: --out PATH (a directory or a .jsonl file) or --bucket NAME (a NATS Object Store bucket), one of them"))
	}
	if f.concurrency < 1 || f.concurrency > 256 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want 1 to 256", f.concurrency))
	}
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	creds, err := exportCredentials(f.project, f.defaultProject)
	if err != nil {
		return err
	}
	var warns exportWarnings
	client, err := chat.New(chat.WithBaseURL(f.apiURL), chat.WithCredentials(creds), chat.WithMaxConnsPerHost(f.concurrency), chat.WithWarnings(warns.add))
	if err != nil {
		return usageError{fmt.Errorf("--chat-api-url: %w", err)}
	}
	defer client.CloseIdleConnections()

	ex := &export.Exporter{Client: client, Concurrency: f.concurrency}
	if f.out != "" {
		target, err := export.OpenFile(f.out)
		if err != nil {
			return err
		}
		ex.Sink, ex.Checkpoints = target, target
	} else {
		nc, js, err := f.nats.connect(ctx, "chatworker export", nil, zap.NewNop())
		if err != nil {
			return err
		}
		defer nc.Close()
		if ex.Sink, err = export.OpenObjectStore(ctx, js, f.bucket, f.nats.replicas); err != nil {
			return err
		}
		if ex.Checkpoints, err = export.OpenKV(ctx, js, f.checkpoints, f.nats.replicas); err != nil {
			return err
		}
	}

	progressOut := stdout
	if f.asJSON {
		progressOut = stderr
	}
	bar := newExportProgress(progressOut, isTerminal(progressOut))
	opt.Progress = bar.update
	sum, runErr := ex.Run(ctx, opt)
	bar.finish()
	warns.print(stderr)

	if f.asJSON {
		if err := printIndented(stdout, sum); err != nil {
			return err
		}
	} else {
		printExportSummary(stdout, sum)
	}
	switch {
	case runErr == nil:
		return nil
	case errors.Is(runErr, export.ErrPartial):
		return fmt.Errorf("%d of %d conversations failed (%s); their checkpoints did not move, so the next run tries them again",
			len(sum.Failed), sum.Conversations, failedIDs(sum.Failed))
	case sum.Interrupted && ctx.Err() != nil:
		return fmt.Errorf("export interrupted after %d of %d conversations; run it again to continue where it stopped", sum.Exported+sum.Unchanged+len(sum.Failed), sum.Conversations)
	}
	return runErr
}

// exportWarnings counts the API's values of unexpected types by field, so
// that a run over thousands of conversations says so once per field, not
// once per value.
type exportWarnings struct {
	mu     sync.Mutex
	counts map[chat.Warning]int
	order  []chat.Warning
}

func (w *exportWarnings) add(warn chat.Warning) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.counts == nil {
		w.counts = map[chat.Warning]int{}
	}
	if w.counts[warn] == 0 {
		w.order = append(w.order, warn)
	}
	w.counts[warn]++
}

func (w *exportWarnings) print(out io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, warn := range w.order {
		fmt.Fprintf(out, "warning: the API answered %d value(s) of %s (%s) as %s, not %s as assumed: exported as returned\n",
			w.counts[warn], warn.Field, warn.Op, warn.Got, warn.Want)
	}
}

func printExportSummary(w io.Writer, s export.Summary) {
	fmt.Fprintf(w, "exported %d of %d conversations (%d unchanged, %d failed): %d messages, %d notes, %d events in %s\n",
		s.Exported, s.Conversations, s.Unchanged, len(s.Failed), s.Messages, s.Notes, s.Events, s.Duration.Round(time.Millisecond))
	if s.Location != "" {
		fmt.Fprintf(w, "to %s\n", s.Location)
	}
	for _, f := range s.Failed {
		fmt.Fprintf(w, "failed %s: %s\n", f.ChatID, oneLine(f.Error))
	}
}

func failedIDs(fs []export.Failure) string {
	ids := make([]string, 0, min(len(fs), 5))
	for i, f := range fs {
		if i == 5 {
			ids = append(ids, "...")
			break
		}
		ids = append(ids, f.ChatID)
	}
	return strings.Join(ids, ", ")
}

// exportProgress shows a run's progress: a bar redrawn in place on a
// terminal, otherwise a plain line every few seconds (for CronJob logs).
type exportProgress struct {
	w       io.Writer
	bar     *progressBar // nil when w is not a terminal
	printed time.Duration
}

const exportLogEvery = 10 * time.Second

func newExportProgress(w io.Writer, tty bool) *exportProgress {
	p := &exportProgress{w: w}
	if tty {
		p.bar = &progressBar{w: w}
	}
	return p
}

func (p *exportProgress) update(s export.Progress) {
	eta := "--"
	if s.Done > 0 {
		eta = (s.ETA() + time.Second/2).Truncate(time.Second).String()
	}
	stats := fmt.Sprintf("%d/%d  exported %d  unchanged %d  failed %d  messages %d  %.1f/s  ETA %s",
		s.Done, s.Total, s.Exported, s.Unchanged, s.Failed, s.Messages, s.Rate(), eta)
	if p.bar == nil {
		if s.Elapsed-p.printed >= exportLogEvery {
			p.printed = s.Elapsed
			fmt.Fprintln(p.w, "progress "+stats)
		}
		return
	}
	p.bar.draw(s.Done, s.Total, stats)
}

func (p *exportProgress) finish() {
	if p.bar != nil {
		p.bar.finish()
	}
}
