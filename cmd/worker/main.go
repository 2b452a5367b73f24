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
	"syscall"

	"github.com/chatworker/worker/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, errHelp):
	case errors.As(err, new(exitError)):
		// The command said what happened; the status says which case.
		var e exitError
		errors.As(err, &e)
		fmt.Fprintf(os.Stderr, "worker: %v\n", e.err)
		os.Exit(e.code)
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "worker: %v\nRun `worker help` for the commands and their flags.\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		os.Exit(1)
	}
}

const usage = `worker executes chat commands from NATS JetStream against the GoSquared Live Chat API.

Commands:
  run         consume commands and execute them (embedded NATS when no --nats-url)
  demo        embedded NATS + chat API simulator + worker, with sample commands
  sim         serve the chat API simulator over HTTP
  send        publish a send command   (--chat, --content, --id)
  note        publish a note command   (--chat, --content, --id)
  archive     publish an archive command (--chat, --id)
              (send, note, archive: --wait for the result or dead letter;
               --not-after TIME|DURATION sets a deadline; --at TIME or --in DURATION schedules)
  status      what became of a command id: waiting, running, succeeded, dead-lettered or scheduled
  schedules   list scheduled commands that have not run (ls [--json])
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
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runWorker(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "send", "note", "archive":
		return runPublish(ctx, cmd, rest, stdout, stderr)
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
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}
