package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/project"
	"go.uber.org/zap"
)

const projectsUsage = `projects ls [--json]
       projects pause NAME --reason TEXT [--by WHO]
       projects resume NAME

A paused project's commands wait in the stream: no API call, no attempt
spent, nothing dead-lettered. An operator's pause holds on every worker and
across restarts until resumed. ls lists the paused projects (every other
project is active) with why, since when and who said so; the workers pause a
project themselves for a refused key or an outage of the Chat API, and
resume it when their check succeeds.
`

// runProjects lists, pauses and resumes projects.
func runProjects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: worker "+projectsUsage)
		return usageError{errors.New("projects: want ls, pause or resume")}
	}
	verb, rest := args[0], args[1:]
	var (
		n      natsFlags
		asJSON bool
		reason string
		by     string
		bucket string
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
	default:
		fmt.Fprint(stderr, "usage: worker "+projectsUsage)
		return usageError{fmt.Errorf("projects: unknown %q: want ls, pause or resume", verb)}
	}
	if err := fs.parse(rest); err != nil {
		return err
	}
	pos := fs.Args()
	wantNames := map[string]int{"ls": 0, "list": 0, "pause": 1, "resume": 1}[verb]
	if len(pos) != wantNames {
		if wantNames == 0 {
			return usageError{fmt.Errorf("projects %s: unexpected argument %q", verb, pos[0])}
		}
		return usageError{fmt.Errorf("projects %s: give the name of one project", verb)}
	}
	if verb == "pause" && reason == "" {
		return usageError{errors.New("projects pause: --reason is required: say why, for the other operators and for apps whose commands wait")}
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
	if asJSON {
		return printIndented(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "every project is active")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tSTATE\tSINCE\tBY\tREASON")
	for _, st := range list {
		p := st.Pause()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Project, st.Name(), p.Since.UTC().Format(time.RFC3339), printable(p.By), printable(p.Reason))
	}
	return tw.Flush()
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
