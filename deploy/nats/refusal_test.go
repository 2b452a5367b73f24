package nats_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
)

// TestWrongUserIsToldSo: run as a user the shipped permissions do not
// grant the job, a worker command fails saying which subject the server
// refused and which user the job is for, not "context deadline exceeded".
// It runs the worker binary, as a person would.
func TestWrongUserIsToldSo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker binary")
	}
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := startConfServer(t)
	_, ojs := connect(t, srv, "operator", "o-pw", nil)
	if _, err := consumer.Provision(t.Context(), ojs, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(chatsim.New(chatsim.Config{}))
	t.Cleanup(sim.Close)

	tests := []struct {
		name, user, pw string
		args           []string
		want           []string
	}{
		{"send --wait as the worker", "worker", "w-pw",
			[]string{"send", "--chat", "c1", "--content", "hi", "--wait", "--timeout", "5s"},
			[]string{`refused NATS user "worker"`, "Permissions Violation", `"app" user's job`}},
		{"export as the app", "app", "a-pw",
			[]string{"export", "--bucket", "CHAT_EXPORTS"},
			[]string{`refused NATS user "app"`, "EXPORTS", "Permissions Violation", `"worker" user's job`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
				"NATS_URL=" + srv.ClientURL(), "NATS_USER=" + tt.user, "NATS_PASSWORD=" + tt.pw,
				"CHAT_API_URL=" + sim.URL + "/chat/v1", "GOSQUARED_API_KEY=k", "GOSQUARED_SITE_TOKEN=s"}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
