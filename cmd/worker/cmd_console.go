package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/console"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/project"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

const consoleUsage = `console [flags]

Serves the operator's console in the browser: the overview, dead letters
(replay, purge), scheduled commands, a command by id, projects (pause,
resume) and the audit log. It listens on loopback unless told otherwise;
beyond loopback it needs --auth-file or --auth-header. It is a process of
its own, not part of worker run: other credentials, another blast radius.
`

// runConsole serves the console until ctx ends.
func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		n                      natsFlags
		lf                     logFlags
		addr, authFile, header string
		projects, idem         string
		cfg                    console.Config
	)
	fs := newFlagSet("console", consoleUsage, stderr)
	n.registerConn(fs)
	lf.register(fs)
	fs.String(&addr, "addr", "WORKER_CONSOLE_ADDR", "127.0.0.1:8090", "address to serve the console on (beyond loopback only with --auth-file or --auth-header)")
	fs.Bool(&cfg.ReadOnly, "read-only", "WORKER_CONSOLE_READ_ONLY", false, "show everything, refuse every action")
	fs.Bool(&cfg.HideContent, "hide-content", "WORKER_CONSOLE_HIDE_CONTENT", false, "hide what customers wrote: command content, API responses, raw bytes")
	fs.String(&authFile, "auth-file", "WORKER_CONSOLE_AUTH_FILE", "", "file of user:password lines for HTTP basic auth")
	fs.String(&header, "auth-header", "WORKER_CONSOLE_AUTH_HEADER", "", "trust this header (X-Forwarded-User, say) set by an authenticating proxy to name the user")
	fs.String(&projects, "projects-bucket", "WORKER_PROJECTS_BUCKET", project.DefaultBucket, "key-value bucket of the project states")
	fs.String(&idem, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", contract.DefaultIdempotencyBucket, "the worker's idempotency bucket")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("console: unexpected argument %q", fs.Arg(0))}
	}
	if authFile != "" && header != "" {
		return usageError{errors.New("console: give --auth-file or --auth-header, not both")}
	}
	cfg.Auth.Header = header
	if authFile != "" {
		users, err := console.ReadAuthFile(authFile)
		if err != nil {
			return usageError{err}
		}
		cfg.Auth.Users = users
	}
	if err := console.CheckExposure(addr, cfg.Auth); err != nil {
		return usageError{err}
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	nc, js, err := n.connect(ctx, "chatworker console", nil, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := n.topology().WithDefaults()
	cfg.JS, cfg.Subjects, cfg.Logger = js, n.subjects(), log
	cfg.CommandsStream, cfg.DeadLettersStream = topo.CommandsStream, topo.DeadLettersStream
	cfg.ProjectsBucket, cfg.IdempotencyBucket = projects, idem
	h, err := console.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console: --addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "console on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("console: shutdown", zap.Error(err))
	}
	return nil
}

// auditCLI records an operator's action from the command line. A failure
// is a warning: the action has happened and its output says so.
func auditCLI(ctx context.Context, js jetstream.JetStream, s actions.Subjects, stderr io.Writer, e audit.Entry) {
	e.Who, e.Via = operator(), "cli"
	if err := audit.New(js, audit.Config{Subjects: s}).Append(ctx, e); err != nil {
		fmt.Fprintf(stderr, "warning: not recorded in the audit log: %v\n", err)
	}
}
