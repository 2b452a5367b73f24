package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/project"
	"go.uber.org/zap"
)

// runStatus prints what became of a command id.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		n       natsFlags
		bucket  string
		asJSON  bool
		timeout time.Duration
		proj    projectFlag
	)
	fs := newFlagSet("status", "status ID [flags]", stderr)
	n.registerConn(fs)
	proj.register(fs, true)
	fs.String(&bucket, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", contract.DefaultIdempotencyBucket, "the worker's idempotency bucket")
	fs.Bool(&asJSON, "json", "", false, "print the status as JSON")
	fs.Duration(&timeout, "timeout", "", time.Minute, "give up looking after this long")
	fs.check(func() []error {
		if fs.NArg() != 1 {
			return []error{fmt.Errorf("want one command id, got %d arguments", fs.NArg())}
		}
		return nil
	})
	if err := fs.parse(args); err != nil {
		return err
	}
	id := fs.Arg(0)
	nc, js, err := n.connect(ctx, "chatworker status", nil, zap.NewNop())
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := actions.Status(ctx, js, id, proj.subjects(n), actions.WithIdempotencyBucket(bucket))
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(stdout, st); err != nil {
			return err
		}
		return statusExit(st)
	}
	fmt.Fprintf(stdout, "%s  %s", st.ID, st.State)
	if r := st.Record; r != nil && r.Attempts > 0 {
		fmt.Fprintf(stdout, "  attempts=%d", r.Attempts)
	}
	switch st.State {
	case actions.StateWaiting:
		fmt.Fprintf(stdout, "  (in the commands stream at sequence %d)\n", st.Sequence)
		if st.Paused != nil {
			fmt.Fprintf(stdout, "it waits because %s\n", pausedWhy(st))
		}
	case actions.StateRunning:
		fmt.Fprintf(stdout, "  (held by %s until %s)\n", st.Record.Owner, st.Record.LeaseExpires.UTC().Format(time.RFC3339))
	case actions.StateSucceeded:
		fmt.Fprintln(stdout)
		if st.Result != nil {
			printSettled(stdout, actions.Settled{Result: st.Result})
		} else {
			fmt.Fprintf(stdout, "api_status=%d at %s (the result is no longer stored)\n", st.Record.APIStatus, st.Record.CompletedAt.UTC().Format(time.RFC3339))
		}
	case actions.StateDeadLettered:
		fmt.Fprintln(stdout)
		printSettled(stdout, actions.Settled{DeadLetter: st.DeadLetter, Subject: "dead letter", Sequence: st.Sequence})
	case actions.StateScheduled:
		fmt.Fprintf(stdout, "  (due at %s; worker cancel %s removes it)\n", st.Schedule.At.Format(time.RFC3339), st.ID)
	}
	return statusExit(st)
}

// statusExit is status's exit status, as --wait's: 0 succeeded, 3
// dead-lettered, 4 not settled yet (waiting, running, scheduled).
func statusExit(st actions.CommandStatus) error {
	switch st.State {
	case actions.StateSucceeded:
		return nil
	case actions.StateDeadLettered:
		return exitError{exitDeadLetter, fmt.Errorf("command %s was dead-lettered", st.ID)}
	}
	return exitError{exitTimeout, fmt.Errorf("command %s is %s: not settled yet", st.ID, st.State)}
}

// pausedWhy says why a waiting command's project holds it.
func pausedWhy(st actions.CommandStatus) string {
	p := st.Paused
	return fmt.Sprintf("its project %s is %s", st.Project, project.State{Project: st.Project, Operator: p}.String())
}
