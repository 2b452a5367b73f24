package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
)

// runSim serves the chat API simulator until ctx is cancelled.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var listen string
	// The API's real budget, so that what works against the simulator
	// works against the API; --rate-per-minute 0 switches it off.
	cfg := chatsim.Config{RatePerMinute: chatsim.APIRatePerMinute}
	fs := newFlagSet("sim", "sim [flags]", stderr)
	fs.String(&listen, "listen", "CHATSIM_LISTEN", "127.0.0.1:8089", "address to serve the simulator on")
	cfg.RegisterFlags(fs.FlagSet)
	if err := fs.parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: chatsim.New(cfg), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "chat API simulator listening on http://%s/chat/v1 (inspect: /_sim/effects, /_sim/stats)\n", ln.Addr())
	stop := context.AfterFunc(ctx, func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
