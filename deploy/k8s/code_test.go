package k8s

import (
	"testing"

	"github.com/chatworker/worker/deploy/k8s/k8stest"
)

const repoRoot = "../.."

// TestReadCode guards the parser itself: the names below are the ones the
// contract (docs/contract.md) promises, so if a refactor hides them
// from ReadCode, this fails here rather than making the manifest checks
// vacuous.
func TestReadCode(t *testing.T) {
	f := k8stest.ReadCode(t, repoRoot)
	for _, env := range []string{"NATS_URL", "NATS_CREDS", "CHAT_API_URL", "WORKER_CONCURRENCY", "WORKER_HTTP_ADDR",
		"WORKER_LOG_LEVEL", "GOSQUARED_API_KEY", "GOSQUARED_API_KEY_FILE", "GOSQUARED_SITE_TOKEN_FILE",
		"GOSQUARED_PROJECTS_FILE"} {
		if !f.Env[env] {
			t.Errorf("environment variable %s not found in cmd/worker", env)
		}
	}
	for _, route := range []string{"/metrics", "/healthz", "/readyz"} {
		if !f.Routes[route] {
			t.Errorf("route %s not found in cmd/worker", route)
		}
	}
	for _, cmd := range []string{"run", "provision", "sim"} {
		if !f.Commands[cmd] {
			t.Errorf("subcommand %s not found in cmd/worker", cmd)
		}
	}
	if f.HTTPPort == "" || f.Stream == "" || f.Durable == "" {
		t.Errorf("http port %q, stream %q, durable %q: want all found", f.HTTPPort, f.Stream, f.Durable)
	}
	t.Logf("%d variables, routes %v, port %s, stream %s, durable %s", len(f.Env), f.Routes, f.HTTPPort, f.Stream, f.Durable)
}
