// Command worker executes chat commands from NATS JetStream against the
// GoSquared Live Chat API, publishes their results and dead letters, and
// lets operators inspect and replay dead letters. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/version"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitStatus(err, os.Stderr))
}

// exitStatus says on w what went wrong, if anything, and returns the exit
// status: 0 done, 1 an error, 2 a mistake in the command line (with a hint
// to the help that answers it), or a command's own status.
func exitStatus(err error, w io.Writer) int {
	var (
		exit exitError
		hint helpHint
	)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &exit):
		// The command said what happened; the status says which case.
		fmt.Fprintf(w, "worker: %v\n", exit.err)
		return exit.code
	case errors.As(err, new(usageError)):
		fmt.Fprintf(w, "worker: %v\n", err)
		if errors.As(err, &hint) && hint.cmd != "" {
			fmt.Fprintf(w, "Run `worker %s -h` for its flags.\n", hint.cmd)
		} else {
			fmt.Fprintln(w, "Run `worker help` for the commands.")
		}
		return 2
	}
	fmt.Fprintf(w, "worker: %v\n", err)
	return 1
}

// usage is the text of `worker help`. The publishing subcommands come from
// contract.Specs, so a command type with a verb is listed where it is
// dispatched.
func usage() string {
	var verbs strings.Builder
	for _, s := range contract.Specs() {
		if s.Verb != "" {
			fmt.Fprintf(&verbs, "  %-11s %s\n", s.Verb, s.Help)
		}
	}
	return strings.Replace(usageText, "{{publish}}\n", verbs.String(), 1)
}

const usageText = `worker executes chat commands from NATS JetStream against the GoSquared Live Chat API.

Commands:
  run         consume commands and execute them (embedded NATS when no --nats-url)
  demo        embedded NATS + chat API simulator + worker, with sample commands
  sim         serve the chat API simulator over HTTP
{{publish}}
              (each of these: --wait for the result or dead letter;
               --not-after TIME|DURATION sets a deadline; --at TIME or --in DURATION schedules)
  status      what became of a command id: waiting, running, succeeded, dead-lettered or scheduled
  schedules   list scheduled commands that have not run, or run one now (ls [--json], run ID)
  cancel      remove a scheduled command before it runs: cancel ID
  dlq         inspect and replay dead letters (ls, show, replay, purge)
  console     serve the operator's console in the browser (127.0.0.1:8090)
  projects    list paused projects; pause and resume a project (ls, pause, resume)
  provision   create or update streams, consumer and buckets, then exit
  export      export conversations to JSON Lines (--out PATH) or an Object Store (--bucket NAME)
  bench       measure throughput, latency and memory against embedded NATS and the simulator
  version     print the version, commit and Go version (also --version)

Run 'worker <command> -h' for a command's flags.
`

// run is the whole program; main only wires signals. Tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	ctx, refused := withRefusals(ctx)
	defer func() { err = refused.explain(err) }()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return usageError{helpHint{errors.New("no command given"), ""}}
	}
	cmd, rest := args[0], args[1:]
	defer func() { err = explain(err, cmd) }()
	switch cmd {
	case "run":
		return runWorker(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "schedules":
		return runSchedules(ctx, rest, stdout, stderr)
	case "cancel":
		return runCancel(ctx, rest, stdout, stderr)
	case "console":
		return runConsole(ctx, rest, stdout, stderr)
	case "projects":
		return runProjects(ctx, rest, stdout, stderr)
	case "provision":
		return runProvision(ctx, rest, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, rest, stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "export":
		return runExport(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.Get())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
		return nil
	}
	for _, s := range contract.Specs() {
		if s.Verb == cmd {
			return runPublish(ctx, s, rest, stdout, stderr)
		}
	}
	err = fmt.Errorf("unknown command %q", cmd)
	if near := closest(cmd, commands()); near != "" {
		err = fmt.Errorf("unknown command %q (did you mean %s?)", cmd, near)
	}
	return usageError{helpHint{err, ""}}
}

// explain adds to a command's error what to do about it: a mistake the
// command found after its flags were read is answered by its help too.
func explain(err error, cmd string) error {
	err = notProvisioned(err)
	if errors.As(err, new(usageError)) && !errors.As(err, new(helpHint)) {
		err = helpHint{err, cmd}
	}
	return err
}

// commands are the first words run knows, for suggestions: the publishing
// verbs come from contract.Specs.
func commands() []string {
	words := []string{"run", "demo", "sim", "status", "schedules", "cancel", "projects", "console",
		"provision", "dlq", "export", "bench", "version", "help"}
	for _, s := range contract.Specs() {
		if s.Verb != "" {
			words = append(words, s.Verb)
		}
	}
	return words
}

// notProvisioned says what to do about an error that means the streams are
// not on the server, for every command: dlq's own says it already.
func notProvisioned(err error) error {
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, jetstream.ErrStreamNotFound) ||
		strings.Contains(err.Error(), "run `worker provision`") {
		return err
	}
	return fmt.Errorf("%w: the streams are not on this NATS server: run `worker provision` (or start `worker run` once) to create them, and check --nats-url and --subject-prefix", err)
}
