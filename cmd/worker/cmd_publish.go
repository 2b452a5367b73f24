package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/chatworker/worker/project"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// publishFlags are the flags of the publishing subcommands (the verbs of
// contract.Specs). Each registers only those its command type takes, so -h
// lists exactly them.
type publishFlags struct {
	chatID, content, id, from, site, meta string

	wait    bool
	timeout time.Duration
	json    bool
	bucket  string

	when timing // --not-after, --at, --in, --every, --cron, --tz, --debounce, --replace

	quiet, quietTZ string
	freqCap        string

	project projectFlag
}

func (p *publishFlags) register(fs *flagSet, spec contract.Spec) {
	fs.String(&p.chatID, "chat", "", "", "chat ID (the visitor's person_id), required")
	if spec.Content {
		fs.String(&p.content, "content", "", "", "text of the message or note, required")
	}
	if spec.From {
		fs.String(&p.from, "from", "", "", "client, agent or bot (default: the API's default, client)")
	}
	fs.String(&p.id, "id", "", "", "command id, the idempotency key (default: a new UUID)")
	p.project.register(fs, false)
	fs.String(&p.site, "site-token", "", "", "another project than the worker's default")
	fs.String(&p.meta, "metadata", "", "", "JSON object echoed in the result")
	fs.Bool(&p.wait, "wait", "", false, "wait for the command's result or dead letter and print it (exit 0 result, 3 dead letter, 4 timeout)")
	fs.Duration(&p.timeout, "timeout", "", 60*time.Second, "with --wait: how long to wait")
	fs.Bool(&p.json, "json", "", false, "print JSON: the record with --wait, the schedule with --at/--in/--every/--cron/--debounce, else the command as published")
	fs.String(&p.bucket, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", contract.DefaultIdempotencyBucket, "the worker's idempotency bucket, read when an id was already published")
	p.when.register(fs)
	fs.String(&p.quiet, "quiet-hours", "", "", "no API call in this window of the visitor's day, START-END on a 24-hour clock (21:00-08:00); the command waits until it ends")
	fs.String(&p.quietTZ, "quiet-tz", "", "", "with --quiet-hours: the visitor's IANA time zone (Europe/London)")
	if spec.Type == contract.TypeSend {
		fs.String(&p.freqCap, "frequency-cap", "", "", "at most MAX automated sends to the chat per window, MAX/PER (3/24h; PER in m, h or d, up to 30d); over it the send is a capped dead letter")
	}
}

func publishUsage(spec contract.Spec) string {
	if !spec.Content {
		return spec.Verb + " --chat ID [flags]"
	}
	return spec.Verb + " --chat ID --content TEXT [flags]"
}

// command builds the command the flags describe, validated, and when it
// is to be published.
func (p *publishFlags) command(typ contract.Type, now time.Time) (contract.Command, plan, error) {
	if p.chatID == "" {
		return contract.Command{}, plan{}, usageError{fmt.Errorf("--chat is required")}
	}
	cmd := contract.Command{ID: p.id, Type: typ, ChatID: p.chatID, Content: p.content, From: p.from, SiteToken: p.site}
	if p.meta != "" {
		if !json.Valid([]byte(p.meta)) {
			return cmd, plan{}, usageError{fmt.Errorf("--metadata is not valid JSON")}
		}
		cmd.Metadata = json.RawMessage(p.meta)
	}
	if cmd.ID == "" {
		cmd.ID = contract.NewID()
	}
	switch start, end, ok := strings.Cut(p.quiet, "-"); {
	case p.quiet == "" && p.quietTZ != "":
		return cmd, plan{}, usageError{fmt.Errorf("--quiet-tz goes with --quiet-hours")}
	case p.quiet != "" && (!ok || p.quietTZ == ""):
		return cmd, plan{}, usageError{fmt.Errorf("--quiet-hours %q: want START-END (21:00-08:00) and the visitor's zone in --quiet-tz", p.quiet)}
	case p.quiet != "":
		cmd.QuietHours = &contract.QuietHours{Start: start, End: end, TZ: p.quietTZ}
	}
	if p.freqCap != "" {
		c, err := contract.ParseFrequencyCap(p.freqCap)
		if err != nil {
			return cmd, plan{}, usageError{fmt.Errorf("--frequency-cap: %w", err)}
		}
		cmd.FrequencyCap = &c
	}
	at, err := p.when.apply(&cmd, now)
	if err != nil {
		return cmd, at, usageError{err}
	}
	if err := cmd.Validate(); err != nil {
		return cmd, at, usageError{err}
	}
	if p.wait && p.timeout <= 0 {
		return cmd, at, usageError{fmt.Errorf("--timeout %v: want a positive duration such as 30s", p.timeout)}
	}
	if p.wait && !at.now() {
		// A schedule may be hours away: waiting for it is worker status's job.
		return cmd, at, usageError{fmt.Errorf("--wait waits for a command published now: drop it with --at/--in/--every/--cron/--debounce, and ask `worker status %s` once the command has run", cmd.ID)}
	}
	return cmd, at, nil
}

// exitError ends the program with a status other than 1 and 2: the
// outcome of a command waited for.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// Exit statuses of the publishing subcommands with --wait, and of worker
// status: 0 a result, 3 a dead letter, 4 not settled (yet): --wait's
// timeout, or a command status finds waiting, running or scheduled.
const (
	exitDeadLetter = 3
	exitTimeout    = 4
)

// runPublish publishes one command and prints its id, or with --wait what
// became of it.
func runPublish(ctx context.Context, spec contract.Spec, args []string, stdout, stderr io.Writer) error {
	var (
		n natsFlags
		p publishFlags
	)
	t, typ := spec.Type, string(spec.Type)
	fs := newFlagSet(spec.Verb, publishUsage(spec), stderr)
	n.registerConn(fs)
	p.register(fs, spec)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (quote the content: --content 'Hello there')", fs.Arg(0))}
	}
	cmd, at, err := p.command(t, time.Now())
	if err != nil {
		return err
	}
	// The command continues the trace of whoever ran us (TRACEPARENT), under
	// a span of its own when tracing is on.
	tp, stopTracing, err := startTracing(ctx, zap.NewNop())
	if err != nil {
		return err
	}
	defer stopTracing()
	ctx, span := tp.Tracer(telemetry.Instrumentation).Start(tracecontext.FromEnv(ctx), "publish "+typ, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(telemetry.Command(cmd.ID, typ, contract.Token(cmd.ChatID))...))
	defer span.End()
	nc, js, err := n.connect(ctx, "chatworker "+typ, nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	if !at.now() {
		return schedule(ctx, js, cmd, at, p.when.replace, p.json, p.project.subjects(n), stdout, stderr)
	}
	opts := []actions.Option{actions.WithIdempotencyBucket(p.bucket)}
	if !p.wait {
		published, err := actions.Publish(ctx, js, cmd, p.project.subjects(n), opts...)
		if errors.Is(err, actions.ErrAlreadyPublished) {
			fmt.Fprintf(stderr, "already published: %v\n", err)
		} else if err != nil {
			return err
		}
		if p.json {
			return printJSON(stdout, published)
		}
		fmt.Fprintln(stdout, published.ID)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	published, settled, err := actions.PublishAndWait(wctx, js, cmd, p.project.subjects(n), opts...)
	switch {
	case errors.Is(err, actions.ErrNotSettled) && ctx.Err() == nil:
		why := ""
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if st, err := actions.Status(sctx, js, published.ID, p.project.subjects(n)); err == nil && st.Paused != nil {
			why = "; it waits because " + pausedWhy(st)
		}
		cancel()
		return exitError{exitTimeout, fmt.Errorf("command %s was published, but neither its result nor its dead letter came within %v%s: it may still run (worker status %s)", published.ID, p.timeout, why, published.ID)}
	case err != nil:
		return err
	}
	if settled.AlreadyPublished {
		fmt.Fprintf(stderr, "already published: command id %q was published before with this body; this is what became of it\n", published.ID)
	}
	if p.json {
		fmt.Fprintf(stdout, "%s\n", settled.Data)
	} else {
		printSettled(stdout, settled)
	}
	if dl := settled.DeadLetter; dl != nil {
		return exitError{exitDeadLetter, fmt.Errorf("command %s was dead-lettered (%s): %s", published.ID, dl.Error.Class, dl.Error.Message)}
	}
	return nil
}

// printIndented writes v as indented JSON, for the --json of the listing
// commands.
func printIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printSettled prints a result or a dead letter in a few lines for a
// person.
func printSettled(w io.Writer, s actions.Settled) {
	if r := s.Result; r != nil {
		fmt.Fprintf(w, "%s  %s %s  id=%s  attempts=%d  api_status=%d  at %s\n", r.Status, r.Type, r.ChatID, r.ID,
			r.Attempts, r.APIStatus, r.CompletedAt.UTC().Format(time.RFC3339))
		if len(r.Response) > 0 && string(r.Response) != "null" {
			fmt.Fprintf(w, "response: %s\n", r.Response)
		}
		return
	}
	dl := s.DeadLetter
	fmt.Fprintf(w, "dead letter  %s  %s sequence %d\nerror: %s\n", deadLetterFields(dl), s.Subject, s.Sequence, dl.Error.Message)
}

// runProvision creates or updates the streams, the consumer and the
// idempotency bucket, then exits.
func runProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		n      natsFlags
		c      consumerFlags
		bucket string
		ttl    time.Duration
		states string
	)
	fs := newFlagSet("provision", "provision [flags]", stderr)
	n.register(fs)
	c.register(fs)
	fs.String(&bucket, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", idempotency.DefaultBucket, "key-value bucket of the idempotency store")
	fs.Duration(&ttl, "idempotency-ttl", "WORKER_IDEMPOTENCY_TTL", idempotency.DefaultTTL, "how long a succeeded command id is remembered")
	fs.String(&states, "projects-bucket", "WORKER_PROJECTS_BUCKET", project.DefaultBucket, "key-value bucket of the project states (pauses)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if errs := append(c.check(), n.checkRetention(ttl)...); len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	nc, js, err := n.connect(ctx, "chatworker provision", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := n.topology()
	c.apply(&topo)
	topo.IdempotencyTTL = ttl
	topo = topo.WithDefaults()
	// As worker run, provision waits for JetStream to answer (a cluster
	// that has just started); every step is idempotent.
	var (
		changes  []consumer.RetentionChange
		compared bool // a try after one that provisioned would find nothing to change
	)
	err = n.untilJetStream(ctx, zap.NewNop(), func() (err error) {
		if !compared {
			if changes, err = consumer.RetentionChanges(ctx, js, topo); err != nil {
				return err
			}
			compared = true
		}
		if _, err := consumer.Provision(ctx, js, topo); err != nil {
			return err
		}
		if _, err := idempotency.Open(ctx, js, idempotency.Config{Bucket: bucket, TTL: topo.IdempotencyTTL, Replicas: n.replicas}); err != nil {
			return fmt.Errorf("idempotency bucket: %w", err)
		}
		if _, err := project.Open(ctx, js, project.Config{Bucket: states, Replicas: n.replicas}); err != nil {
			return err
		}
		if _, err := consumer.OpenChatCaps(ctx, js, consumer.CapsConfig{Replicas: n.replicas}); err != nil {
			return err
		}
		_, err = audit.Open(ctx, js, audit.Config{Subjects: n.subjects(), Replicas: n.replicas})
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range changes {
		fmt.Fprintf(stdout, "changed %s\n", c)
	}
	warnings, _ := topo.RetentionPolicy()
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "streams %s, %s, %s, consumer %s and bucket %s are in place\n",
		topo.CommandsStream, topo.ResultsStream, topo.DeadLettersStream, topo.Durable, bucket)
	return nil
}
