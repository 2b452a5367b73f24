package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/chatworker/worker/chat"
	"github.com/nats-io/nats-server/v2/server"
)

func runWorker(ctx context.Context, args []string, _, stderr io.Writer) error {
	var f workerFlags
	fs := newFlagSet("run", "run [flags]", stderr)
	f.register(fs)
	perr := fs.parse(args)
	if errors.Is(perr, errHelp) || errors.As(perr, new(syntaxError)) {
		return perr
	}
	// Every problem of the configuration at once: the flags' and the
	// credentials'.
	creds, err := apiCredentials()
	if err == nil {
		f.projects, err = apiProjects(creds, f.defaultProject)
	}
	switch {
	case perr != nil && err != nil:
		return usageError{helpHint{errors.Join(perr, err), "run"}}
	case perr != nil:
		return perr
	case err != nil:
		return err
	}
	log, err := f.log.logger(stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	var embedded *server.Server
	if f.nats.url == "" {
		host, port, err := splitHostPort(f.embeddedAddr)
		if err != nil {
			return usageError{fmt.Errorf("--embedded-listen %q: %w", f.embeddedAddr, err)}
		}
		if embedded, err = startEmbedded(host, port, f.dataDir, log); err != nil {
			return err
		}
	}
	a, err := newApp(ctx, &f, log, creds, embedded)
	if err != nil {
		if embedded != nil {
			embedded.Shutdown()
		}
		return err
	}
	return a.run(ctx)
}

// apiCredentials reads the Chat API credentials, only ever from the
// environment or files.
func apiCredentials() (chat.Credentials, error) {
	key, err := secret("GOSQUARED_API_KEY")
	if err != nil {
		return chat.Credentials{}, err
	}
	if key == "" {
		return chat.Credentials{}, errors.New("no Chat API key: set GOSQUARED_API_KEY (or GOSQUARED_API_KEY_FILE to a file holding it), " +
			"or try `worker demo`, which runs against the built-in simulator and needs no credentials")
	}
	site, err := secret("GOSQUARED_SITE_TOKEN")
	if err != nil {
		return chat.Credentials{}, err
	}
	if site == "" {
		return chat.Credentials{}, errors.New("no site token: set GOSQUARED_SITE_TOKEN (or GOSQUARED_SITE_TOKEN_FILE) to your project's token, such as GSN-106863-S")
	}
	return chat.Credentials{APIKey: key, SiteToken: site}, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want a number from 0 to 65535", p)
	}
	return host, port, nil
}
