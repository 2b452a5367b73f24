package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/project"
	"go.uber.org/zap"
)

const projectsUsage = `projects ls [--json]
       projects pause NAME --reason TEXT [--by WHO]
       projects resume NAME
       projects set NAME [--quiet-hours START-END --quiet-tz ZONE] [--frequency-cap MAX/PER] [--clear]

A paused project's commands wait in the stream: no API call, no attempt
spent, nothing dead-lettered. An operator's pause holds on every worker and
across restarts until resumed. ls lists the paused projects (every other
project is active) with why, since when and who said so; the workers pause a
project themselves for a refused key or an outage of the Chat API, and
resume it when their check succeeds.

set gives a project defaults for its send commands: quiet hours on the clock
of a zone, and a frequency cap per chat. Every worker applies them within
moments, without a restart; a send's own quiet_hours or frequency_cap
replaces the project's. "none" removes one default, --clear all of them.
ls lists them below the pauses. NAME is the project's name, as ls shows it
and the workers' configuration gives it (--default-project for the
worker's own, NAME:SITE_TOKEN=API_KEY entries for the others).
`

// runProjects lists, pauses and resumes projects.
func runProjects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: worker "+projectsUsage)
		return usageError{errors.New("projects: want ls, pause, resume or set")}
	}
	verb, rest := args[0], args[1:]
	var (
		n      natsFlags
		asJSON bool
		reason string
		by     string
		bucket string
		set    settingsFlags
	)
	fs := newFlagSet("projects "+verb, projectsUsage, stderr)
	n.registerConn(fs)
	fs.String(&bucket, "projects-bucket", "WORKER_PROJECTS_BUCKET", project.DefaultBucket, "key-value bucket of the project states")
	switch verb {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, "usage: worker "+projectsUsage)
		return nil
	case "ls", "list":
		fs.Bool(&asJSON, "json", "", false, "print a JSON array")
	case "pause":
		fs.String(&reason, "reason", "", "", "why, for the other operators and for apps asking about a waiting command (required)")
		fs.String(&by, "by", "", operator(), "who pauses it")
	case "resume":
	case "set":
		set.register(fs)
		fs.String(&by, "by", "", operator(), "who sets them")
	default:
		fmt.Fprint(stderr, "usage: worker "+projectsUsage)
		return usageError{fmt.Errorf("projects: unknown %q: want ls, pause, resume or set", verb)}
	}
	if err := fs.parse(rest); err != nil {
		return err
	}
	pos := fs.Args()
	wantNames := map[string]int{"ls": 0, "list": 0, "pause": 1, "resume": 1, "set": 1}[verb]
	if len(pos) != wantNames {
		if wantNames == 0 {
			return usageError{fmt.Errorf("projects %s: unexpected argument %q", verb, pos[0])}
		}
		return usageError{fmt.Errorf("projects %s: give the name of one project", verb)}
	}
	if verb == "pause" && reason == "" {
		return usageError{errors.New("projects pause: --reason is required: say why, for the other operators and for apps whose commands wait")}
	}
	if verb == "set" {
		if err := set.check(); err != nil {
			return usageError{fmt.Errorf("projects set: %w", err)}
		}
	}
	nc, js, err := n.connect(ctx, "chatworker projects", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := project.Bind(ctx, js, bucket)
	if err != nil {
		return err
	}
	switch verb {
	case "pause":
		st, err := store.PauseByOperator(ctx, pos[0], reason, by)
		if err != nil {
			return usageOrError(err)
		}
		auditCLI(ctx, js, n.subjects(), stderr, audit.Entry{Action: audit.Pause, Which: st.Project, Count: 1, Detail: reason})
		fmt.Fprintf(stdout, "%s: %s\n", st.Project, st)
		fmt.Fprintf(stderr, "its commands wait until `worker projects resume %s`\n", st.Project)
		return nil
	case "set":
		old, err := store.Settings(ctx, pos[0])
		if err != nil {
			return usageOrError(err)
		}
		st := set.apply(old)
		st.By = by
		if st, err = store.SetSettings(ctx, pos[0], st); err != nil {
			return usageOrError(err)
		}
		auditCLI(ctx, js, n.subjects(), stderr, audit.Entry{Action: audit.Settings, Which: st.Project, Count: 1, Detail: st.String()})
		fmt.Fprintf(stdout, "%s: %s\n", st.Project, st)
		return nil
	case "resume":
		st, was, err := store.ResumeByOperator(ctx, pos[0])
		if err != nil {
			return usageOrError(err)
		}
		if !was {
			fmt.Fprintf(stderr, "%s was not paused by an operator\n", st.Project)
		} else {
			auditCLI(ctx, js, n.subjects(), stderr, audit.Entry{Action: audit.Resume, Which: st.Project, Count: 1})
		}
		fmt.Fprintf(stdout, "%s: %s\n", st.Project, st)
		return nil
	}
	list, err := store.List(ctx)
	if err != nil {
		return err
	}
	settings, err := store.ListSettings(ctx)
	if err != nil {
		return err
	}
	// The replicas' records say which projects they serve and how much of
	// each budget they spent: every served project is listed, paused or not.
	members, err := fleet.List(ctx, js, fleet.DefaultBucket)
	if err != nil {
		return err
	}
	rows := projectRows(list, settings, fleet.BudgetUse(members))
	for i := range rows {
		if rows[i].Waiting, err = actions.Waiting(ctx, js, n.subjects().For(rows[i].Project)); err != nil {
			return err
		}
	}
	if asJSON {
		return printIndented(stdout, rows)
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "every project is active")
	}
	if len(list) > 0 || len(members) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECT\tSTATE\tSINCE\tBY\tREASON\tWAITING\tBUDGET USED (LAST MINUTE)")
		for _, r := range rows {
			if r.Active() && r.Budget == nil {
				continue // settings only: the table below
			}
			since, by, reason := "-", "-", "-"
			if p := r.Pause(); p != nil {
				since, by, reason = p.Since.UTC().Format(time.RFC3339), printable(p.By), printable(p.Reason)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Project, r.Name(), since, by, reason, r.Waiting, budgetUse(r.Budget))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(settings) == 0 {
		return nil
	}
	if len(list) > 0 {
		fmt.Fprintln(stdout)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tQUIET HOURS\tZONE\tFREQUENCY CAP\tSINCE\tBY")
	for _, st := range settings {
		quiet, zone, freq := "-", "-", "-"
		if q := st.QuietHours; q != nil {
			quiet, zone = q.Start+"-"+q.End, q.TZ
		}
		if c := st.FrequencyCap; c != nil {
			freq = c.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Project, quiet, zone, freq, st.Since.UTC().Format(time.RFC3339), printable(st.By))
	}
	return tw.Flush()
}

// projectRow is one project in `projects ls --json`: its state, and its
// settings when it has some. A project with settings and no pause is listed
// as active.
type projectRow struct {
	project.State
	Settings *project.Settings `json:"settings,omitempty"`
	// Budget is what the live replicas spent of the project's rate budget
	// in the last minute, against the API's limit (fleet.BudgetUse).
	Budget *chat.Budget `json:"budget,omitempty"`
	// Waiting is the commands waiting on the project's v2 subjects.
	Waiting int `json:"waiting"`
}

func projectRows(states []project.State, settings []project.Settings, budgets map[string]chat.Budget) []projectRow {
	rows := make([]projectRow, 0, len(states))
	for _, st := range states {
		rows = append(rows, projectRow{State: st})
	}
	row := func(name string) *projectRow {
		i := slices.IndexFunc(rows, func(r projectRow) bool { return r.Project == name })
		if i < 0 {
			rows = append(rows, projectRow{State: project.State{Project: name}})
			i = len(rows) - 1
		}
		return &rows[i]
	}
	for _, s := range settings {
		row(s.Project).Settings = &s
	}
	for name, b := range budgets {
		row(name).Budget = &b
	}
	slices.SortFunc(rows, func(a, b projectRow) int { return strings.Compare(a.Project, b.Project) })
	return rows
}

// settingsFlags are what `projects set` changes; a flag not given leaves
// its default as it was.
type settingsFlags struct {
	quiet, quietTZ, freqCap string
	clear                   bool
}

func (f *settingsFlags) register(fs *flagSet) {
	fs.String(&f.quiet, "quiet-hours", "", "", "the project's sends wait while the clock of --quiet-tz is inside START-END (21:00-08:00); none removes it")
	fs.String(&f.quietTZ, "quiet-tz", "", "", "with --quiet-hours: the IANA time zone of the project's visitors (Europe/London)")
	fs.String(&f.freqCap, "frequency-cap", "", "", "at most MAX sends under a cap to each chat per window, MAX/PER (3/24h); none removes it")
	fs.Bool(&f.clear, "clear", "", false, "remove every default of the project first")
}

// check refuses flags that cannot make settings, before any connection.
func (f *settingsFlags) check() error {
	_, err := f.parse()
	if err == nil && !f.clear && f.quiet == "" && f.freqCap == "" {
		err = errors.New("nothing to set: give --quiet-hours with --quiet-tz, --frequency-cap, or --clear")
	}
	return err
}

// parse reads the flags into the settings they set (nil fields: not
// given or none).
func (f *settingsFlags) parse() (project.Settings, error) {
	var st project.Settings
	switch start, end, ok := strings.Cut(f.quiet, "-"); {
	case f.quiet == "" && f.quietTZ != "", f.quiet == "none" && f.quietTZ != "":
		return st, errors.New("--quiet-tz goes with --quiet-hours")
	case f.quiet == "", f.quiet == "none":
	case !ok || f.quietTZ == "":
		return st, fmt.Errorf("--quiet-hours %q: want START-END (21:00-08:00) and the zone in --quiet-tz", f.quiet)
	default:
		st.QuietHours = &contract.QuietHours{Start: start, End: end, TZ: f.quietTZ}
		if err := st.QuietHours.Validate(); err != nil {
			return st, fmt.Errorf("--quiet-hours: %w", err)
		}
	}
	if f.freqCap != "" && f.freqCap != "none" {
		c, err := contract.ParseFrequencyCap(f.freqCap)
		if err != nil {
			return st, fmt.Errorf("--frequency-cap: %w", err)
		}
		st.FrequencyCap = &c
	}
	return st, nil
}

// apply is old with the flags' changes.
func (f *settingsFlags) apply(old project.Settings) project.Settings {
	if f.clear {
		old = project.Settings{Project: old.Project}
	}
	st, _ := f.parse() // check has refused what does not parse
	if f.quiet != "" {
		old.QuietHours = st.QuietHours
	}
	if f.freqCap != "" {
		old.FrequencyCap = st.FrequencyCap
	}
	return old
}

// budgetUse says how much of a project's budget the replicas spent in the
// last minute: "120/600 (20%)", "120" while the API has not said its limit,
// "-" when no replica serves the project.
func budgetUse(b *chat.Budget) string {
	switch {
	case b == nil:
		return "-"
	case !b.Known || b.Limit <= 0:
		return fmt.Sprint(b.Used)
	}
	return fmt.Sprintf("%d/%d (%d%%)", b.Used, b.Limit, b.Used*100/b.Limit)
}

// usageOrError makes a refused name or reason a usage error (exit 2).
func usageOrError(err error) error {
	if errors.Is(err, project.ErrInvalidName) {
		return usageError{err}
	}
	return err
}

// operator names the person running the command for --by: $USER@host.
func operator() string {
	who := os.Getenv("USER")
	if who == "" {
		who = "unknown"
	}
	if host, err := os.Hostname(); err == nil {
		who += "@" + host
	}
	return who
}
