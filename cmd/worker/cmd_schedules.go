package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// timing is the --not-after, --at, --in, --every, --cron, --tz,
// --debounce and --replace flags of send, note and archive.
type timing struct {
	notAfter, at       string
	in, every          time.Duration
	cron, tz, debounce string
	replace            bool
}

func (t *timing) register(fs *flagSet) {
	fs.String(&t.notAfter, "not-after", "", "", "deadline: an RFC 3339 time, or a duration (from the schedule's time with --at/--in, else from now); no API call at or after it")
	fs.String(&t.at, "at", "", "", "schedule: publish the command at this RFC 3339 time (whole seconds, rounded up)")
	fs.Duration(&t.in, "in", "", 0, "schedule: publish the command after this long (90s, 1h30m, 7d)")
	fs.Duration(&t.every, "every", "", 0, "recurring: publish the command every this long (24h, 7d; whole seconds, at least 1s), each firing its own command, until worker cancel")
	fs.String(&t.cron, "cron", "", "", "recurring: publish the command at the times of this cron expression, six fields, seconds first ('0 0 9 * * 1-5': 09:00 on weekdays)")
	fs.String(&t.tz, "tz", "", "", "with --cron: read it in this IANA time zone (Europe/London; default UTC)")
	fs.String(&t.debounce, "debounce", "", "", "with --in: replace the command pending under this key (same type and chat), so only the last of a burst is sent; --not-after bounds the delay")
	fs.Bool(&t.replace, "replace", "", false, "schedule over a pending schedule with this id and a different body, rather than refuse")
}

// plan is when a command is to be published: now (the zero plan), at a
// time, at every firing of a recurrence, or debounced.
type plan struct {
	at       time.Time
	recur    contract.Recurrence
	debounce string
	delay    time.Duration
}

func (p plan) now() bool {
	return p.at.IsZero() && p.recur == (contract.Recurrence{}) && p.debounce == ""
}

// apply sets cmd's deadline and returns when to publish it. Times in the
// past are refused: a schedule at one would fire at once, a deadline in one
// would only expire.
func (t *timing) apply(cmd *contract.Command, now time.Time) (plan, error) {
	var (
		p    plan
		errs []error
	)
	recurring := t.every != 0 || t.cron != ""
	switch {
	case t.at != "" && t.in != 0:
		errs = append(errs, errors.New("--at and --in both say when: give one"))
	case recurring && (t.at != "" || t.in != 0) && t.debounce == "":
		errs = append(errs, errors.New("--every and --cron repeat from now: drop --at/--in"))
	case t.every != 0 && t.cron != "":
		errs = append(errs, errors.New("--every and --cron both say how often: give one"))
	case t.at != "":
		var err error
		if p.at, err = time.Parse(time.RFC3339Nano, t.at); err != nil {
			errs = append(errs, fmt.Errorf("--at %q: want an RFC 3339 time with a zone, such as 2026-11-25T09:00:00Z", t.at))
		} else if p.at.Before(now.Truncate(time.Second)) {
			errs = append(errs, fmt.Errorf("--at %s is in the past (it is %s): give a time to come, or publish now without --at", t.at, now.UTC().Format(time.RFC3339)))
		}
	case t.in < 0:
		errs = append(errs, fmt.Errorf("--in %s: want a positive duration", t.in))
	case t.in > 0:
		p.at = now.Add(t.in)
	}
	switch {
	case t.tz != "" && t.cron == "":
		errs = append(errs, errors.New("--tz goes with --cron (an --every interval is the same in every zone)"))
	case t.every < 0:
		errs = append(errs, fmt.Errorf("--every %s: want a positive duration", t.every))
	case recurring && t.debounce == "":
		p.recur = contract.Recurrence{Every: t.every, Cron: t.cron, TZ: t.tz}
		if err := p.recur.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--every/--cron/--tz: %w", err))
		}
		if t.notAfter != "" {
			errs = append(errs, errors.New("--not-after with --every/--cron: every firing would share the one deadline; leave it out"))
		}
	}
	if t.debounce != "" {
		switch {
		case t.in <= 0 || t.at != "" || recurring:
			errs = append(errs, errors.New("--debounce KEY takes --in DURATION (how long after the last of a burst to send it), and no --at, --every or --cron"))
		case t.replace:
			errs = append(errs, errors.New("--debounce always replaces the command pending under its key: drop --replace"))
		default:
			p = plan{debounce: t.debounce, delay: t.in}
		}
	}
	if t.replace && p.now() {
		errs = append(errs, errors.New("--replace replaces a pending schedule: give --at, --in, --every or --cron"))
	}
	if t.notAfter != "" {
		from := now
		if !p.at.IsZero() {
			from = p.at
		}
		d, err := parseDeadline(t.notAfter, from)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !d.After(now):
			errs = append(errs, fmt.Errorf("--not-after %s is in the past (it is %s): the command would expire without running", t.notAfter, now.UTC().Format(time.RFC3339)))
		default:
			cmd.NotAfter = d
		}
	}
	return p, errors.Join(errs...)
}

// parseDeadline reads --not-after: an RFC 3339 time, or a duration after
// from.
func parseDeadline(v string, from time.Time) (time.Time, error) {
	if d, err := parseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--not-after %s: want a positive duration or a time", v)
		}
		return from.Add(d), nil
	}
	t, err := contract.ParseDeadline(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--not-after %q: want an RFC 3339 time with a zone (2026-11-25T09:15:00Z) or a duration (15m, 7d)", v)
	}
	return t, nil
}

// schedule stores cmd to run as planned and prints its id, as publishing
// does, or with --json the schedule.
func schedule(ctx context.Context, js jetstream.JetStream, cmd contract.Command, pl plan, replace, asJSON bool, s contract.Subjects, stdout, stderr io.Writer) error {
	var opts []actions.Option
	if replace {
		opts = append(opts, actions.WithReplace())
	}
	var (
		p   actions.Pending
		err error
	)
	switch {
	case pl.debounce != "":
		p, err = actions.ScheduleDebounced(ctx, js, cmd, pl.debounce, pl.delay, s, opts...)
	case pl.recur != (contract.Recurrence{}):
		p, err = actions.ScheduleRecurring(ctx, js, cmd, pl.recur, s, opts...)
	default:
		p, err = actions.ScheduleAt(ctx, js, cmd, pl.at, s, opts...)
	}
	if contract.ClassOf(err) == contract.ClassInvalid {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, p)
	}
	fmt.Fprintln(stdout, p.ID)
	switch {
	case p.Recurring():
		fmt.Fprintf(stderr, "scheduled %s, first at %s (each firing runs as %s@<time>; worker cancel %s ends it)\n", recurrenceOf(p), p.At.Format(time.RFC3339), p.ID, p.ID)
	case p.DebounceKey != "":
		fmt.Fprintf(stderr, "scheduled for %s under debounce key %q: a newer command with the key replaces it (worker cancel %s removes it)\n", p.At.Format(time.RFC3339), p.DebounceKey, p.ID)
	default:
		fmt.Fprintf(stderr, "scheduled for %s (worker cancel %s removes it before then)\n", p.At.Format(time.RFC3339), p.ID)
	}
	return nil
}

// recurrenceOf says how p repeats: "every 24h0m0s", "cron 0 0 9 * * 1-5
// Europe/London".
func recurrenceOf(p actions.Pending) string {
	switch {
	case p.Every != "":
		return "every " + p.Every
	case p.TZ != "":
		return "cron " + p.Cron + " " + p.TZ
	case p.Cron != "":
		return "cron " + p.Cron
	}
	return ""
}

const schedulesUsage = `schedules ls [--json]
       schedules run ID [--json]

ls lists the scheduled commands that have not run yet: id, type, chat,
time (the next firing of a recurring one), deadline, and how it recurs or
its debounce key. Schedule with send, note or archive and --at TIME, --in
DURATION, --every DURATION, --cron EXPR [--tz ZONE] or --debounce KEY --in
DURATION; remove one, or end a series, with worker cancel ID.

run publishes the command of the schedule ID now and removes the schedule;
a recurring one fires one firing now (id ID@<now>) and keeps its series. If
the removal fails after the publish, the schedule still fires at its time
and the worker answers that second command with a duplicate result, without
a second API call.
`

// runSchedules lists pending schedules, or runs one now.
func runSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	switch verb {
	case "ls", "list", "run":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, "usage: worker "+schedulesUsage)
		return nil
	default:
		return usageError{helpHint{errors.New("schedules: want ls or run"), "schedules"}}
	}
	var (
		n      natsFlags
		proj   projectFlag
		asJSON bool
	)
	usage := "schedules ls [--project NAME] [--json]"
	if verb == "run" {
		usage = "schedules run ID [--project NAME] [--json]"
	}
	fs := newFlagSet("schedules "+verb, usage, stderr)
	n.registerConn(fs)
	proj.register(fs, true)
	fs.Bool(&asJSON, "json", "", false, "print a JSON array")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if verb == "run" {
		if fs.NArg() != 1 {
			return usageError{errors.New("schedules run: give the id of one scheduled command (worker schedules ls lists them)")}
		}
		return runScheduleNow(ctx, n, proj.subjects(n), fs.Arg(0), asJSON, stdout, stderr)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("schedules ls: unexpected argument %q", fs.Arg(0))}
	}
	nc, js, err := n.connect(ctx, "chatworker schedules", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	list, err := actions.ListSchedules(ctx, js, proj.subjects(n))
	if err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []actions.Pending{}
		}
		return printIndented(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "no pending schedules")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tTYPE\tCHAT\tAT (NEXT)\tNOT AFTER\tREPEATS")
	for _, p := range list {
		at, deadline := "?", "-"
		if !p.At.IsZero() {
			at = p.At.Format(time.RFC3339)
		}
		if !p.NotAfter.IsZero() {
			deadline = p.NotAfter.UTC().Format(time.RFC3339)
		}
		repeats := recurrenceOf(p)
		if p.DebounceKey != "" {
			repeats = "debounce " + p.DebounceKey
		}
		if repeats == "" {
			repeats = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(p.ID), dashIfEmpty(p.Project), p.Type, printable(p.ChatID), at, deadline, printable(repeats))
		if p.Problem != "" {
			fmt.Fprintf(tw, "\t\t(%s)\t\t\t\t\n", printable(p.Problem))
		}
	}
	return tw.Flush()
}

// runScheduleNow runs the schedule id now (actions.RunNow).
func runScheduleNow(ctx context.Context, n natsFlags, s actions.Subjects, id string, asJSON bool, stdout, stderr io.Writer) error {
	nc, js, err := n.connect(ctx, "chatworker schedules", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	ran, err := actions.RunNow(ctx, js, s, id)
	if len(ran) > 0 {
		// Recorded even when a later step failed: the commands were published.
		auditCLI(ctx, js, n.subjects(), stderr, audit.Entry{Action: audit.RunNow, Which: id, Count: len(ran), Detail: ranDetail(ran)})
	}
	if contract.ClassOf(err) == contract.ClassInvalid {
		return usageError{err}
	}
	if asJSON && err == nil {
		return printIndented(stdout, ran)
	}
	for _, r := range ran {
		fmt.Fprintf(stdout, "%s\n", ranLine(r))
	}
	return err
}

// ranLine says what running r now did, for the command line and the
// console.
func ranLine(r actions.Ran) string {
	var b strings.Builder
	fmt.Fprintf(&b, "published %s %s for chat %s now", r.Type, printable(r.Command), printable(r.ChatID))
	if r.Duplicate {
		b.WriteString(" (the stream already held a command with this id: that one runs)")
	}
	if r.Kept {
		fmt.Fprintf(&b, "; the series (%s) goes on, next at %s", printable(recurrenceOf(r.Pending)), r.At.Format(time.RFC3339))
	} else {
		fmt.Fprintf(&b, "; its schedule for %s is removed", r.At.Format(time.RFC3339))
	}
	return b.String()
}

// ranDetail is the audit entry's detail of a run-now: the ids published.
func ranDetail(ran []actions.Ran) string {
	ids := make([]string, len(ran))
	for i, r := range ran {
		ids[i] = r.Command
	}
	return "published " + strings.Join(ids, ", ")
}

// runCancel removes a pending schedule.
func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		n    natsFlags
		proj projectFlag
	)
	fs := newFlagSet("cancel", "cancel ID [--project NAME]", stderr)
	n.registerConn(fs)
	proj.register(fs, true)
	if err := fs.parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) != 1 {
		return usageError{errors.New("cancel: give the id of one scheduled command (worker schedules ls lists them)")}
	}
	nc, js, err := n.connect(ctx, "chatworker cancel", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	done, err := actions.CancelSchedule(ctx, js, proj.subjects(n), pos[0])
	if contract.ClassOf(err) == contract.ClassInvalid {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if len(done) > 0 {
		auditCLI(ctx, js, n.subjects(), stderr, audit.Entry{Action: audit.Cancel, Which: pos[0], Count: len(done)})
	}
	for _, p := range done {
		if p.Recurring() {
			fmt.Fprintf(stdout, "cancelled %s %s for chat %s (%s): no firing after %s\n", p.Type, printable(p.ID), printable(p.ChatID), printable(recurrenceOf(p)), p.At.Format(time.RFC3339))
			if time.Until(p.At) < actions.CancelMargin {
				fmt.Fprintf(stderr, "the firing due at %s may still run\n", p.At.Format(time.RFC3339))
			}
			continue
		}
		fmt.Fprintf(stdout, "cancelled %s %s for chat %s, due %s: it will not run\n", p.Type, printable(p.ID), printable(p.ChatID), p.At.Format(time.RFC3339))
	}
	return nil
}

// printable keeps a terminal safe from control characters in ids and chat
// IDs, which are the apps' bytes.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
