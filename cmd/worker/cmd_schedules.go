package main

import (
	"context"
	"encoding/json"
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

// timing is the --not-after, --at and --in flags of send, note and archive.
type timing struct {
	notAfter, at string
	in           time.Duration
}

func (t *timing) register(fs *flagSet) {
	fs.String(&t.notAfter, "not-after", "", "", "deadline: an RFC 3339 time, or a duration (from the schedule's time with --at/--in, else from now); no API call at or after it")
	fs.String(&t.at, "at", "", "", "schedule: publish the command at this RFC 3339 time (whole seconds, rounded up)")
	fs.Duration(&t.in, "in", "", 0, "schedule: publish the command after this long (90s, 1h30m, 7d)")
}

// apply sets cmd's deadline and returns the schedule time (zero: publish
// now).
func (t *timing) apply(cmd *contract.Command, now time.Time) (time.Time, error) {
	var at time.Time
	switch {
	case t.at != "" && t.in != 0:
		return time.Time{}, errors.New("--at and --in both say when: give one")
	case t.at != "":
		var err error
		if at, err = time.Parse(time.RFC3339Nano, t.at); err != nil {
			return time.Time{}, fmt.Errorf("--at %q: want an RFC 3339 time with a zone, such as 2026-11-25T09:00:00Z", t.at)
		}
	case t.in < 0:
		return time.Time{}, fmt.Errorf("--in %s: want a positive duration", t.in)
	case t.in > 0:
		at = now.Add(t.in)
	}
	if t.notAfter != "" {
		from := now
		if !at.IsZero() {
			from = at
		}
		d, err := parseDeadline(t.notAfter, from)
		if err != nil {
			return time.Time{}, err
		}
		cmd.NotAfter = d
	}
	return at, nil
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

// schedule stores cmd to run at at and prints its id, as publishing does.
func schedule(ctx context.Context, js jetstream.JetStream, cmd contract.Command, at time.Time, s contract.Subjects, stdout, stderr io.Writer) error {
	p, err := actions.ScheduleAt(ctx, js, cmd, at, s)
	if contract.ClassOf(err) == contract.ClassInvalid {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, p.ID)
	fmt.Fprintf(stderr, "scheduled for %s (worker cancel %s removes it before then)\n", p.At.Format(time.RFC3339), p.ID)
	return nil
}

const schedulesUsage = `schedules ls [--json]

Lists the scheduled commands that have not run yet: id, type, chat and time.
Schedule with send, note or archive and --at TIME or --in DURATION; remove
one with worker cancel ID.
`

// runSchedules lists pending schedules.
func runSchedules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "ls" && args[0] != "list") {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, "usage: worker "+schedulesUsage)
			return nil
		}
		return usageError{helpHint{errors.New("schedules: want ls"), "schedules"}}
	}
	var (
		n      natsFlags
		asJSON bool
	)
	fs := newFlagSet("schedules ls", "schedules ls [--json]", stderr)
	n.registerConn(fs)
	fs.Bool(&asJSON, "json", "", false, "print a JSON array")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("schedules ls: unexpected argument %q", fs.Arg(0))}
	}
	nc, js, err := n.connect(ctx, "chatworker schedules", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	list, err := actions.ListSchedules(ctx, js, n.subjects())
	if err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []actions.Pending{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "no pending schedules")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tCHAT\tAT\tNOT AFTER")
	for _, p := range list {
		at, deadline := "?", "-"
		if !p.At.IsZero() {
			at = p.At.Format(time.RFC3339)
		}
		if !p.NotAfter.IsZero() {
			deadline = p.NotAfter.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(p.ID), p.Type, printable(p.ChatID), at, deadline)
		if p.Problem != "" {
			fmt.Fprintf(tw, "\t(%s)\t\t\t\n", printable(p.Problem))
		}
	}
	return tw.Flush()
}

// runCancel removes a pending schedule.
func runCancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var n natsFlags
	fs := newFlagSet("cancel", "cancel ID", stderr)
	n.registerConn(fs)
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
	done, err := actions.CancelSchedule(ctx, js, n.subjects(), pos[0])
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
