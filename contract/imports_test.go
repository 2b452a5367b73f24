package contract_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImports: an app that only decodes results imports contract, and must
// pull in neither a NATS client nor any other package of the worker; an app
// that publishes imports actions, and must not pull in the Chat API client
// or its CA bundle (a blank import that lands roots in every binary). The
// execute row is the control: it does import the client, so a broken
// listing cannot pass the test by finding nothing.
func TestImports(t *testing.T) {
	const module = "github.com/chatworker/worker/"
	apiClient := []string{module + "chat", "golang.org/x/crypto/x509roots/fallback"}
	tests := []struct {
		pkg       string
		forbidden []string
		wantSome  bool
		// prefixes: no dependency may start with these (the module's own
		// packages, NATS), apart from pkg itself.
		prefixes []string
	}{
		{pkg: module + "contract", forbidden: apiClient, prefixes: []string{module, "github.com/nats-io/"}},
		{pkg: module + "actions", forbidden: apiClient},
		{pkg: module + "execute", forbidden: apiClient, wantSome: true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			deps := goListDeps(t, tt.pkg)
			for _, f := range tt.forbidden {
				if got := slices.Contains(deps, f); got != tt.wantSome {
					t.Errorf("%s imports %s: %v, want %v", tt.pkg, f, got, tt.wantSome)
				}
			}
			for _, d := range deps {
				for _, p := range tt.prefixes {
					if d != tt.pkg && strings.HasPrefix(d, p) {
						t.Errorf("%s imports %s", tt.pkg, d)
					}
				}
			}
		})
	}
}

// TestPublishingLinksNoTracingSDK: Publish carries trace context with the
// OpenTelemetry API alone; the SDK, the OTLP exporters and gRPC stay out of
// a publishing app's binary (they come with the worker's telemetry). The
// telemetry row is the control.
func TestPublishingLinksNoTracingSDK(t *testing.T) {
	heavy := []string{"go.opentelemetry.io/otel/sdk/trace", "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp", "google.golang.org/grpc"}
	tests := []struct {
		pkg       string
		wantHeavy bool
	}{
		{"github.com/chatworker/worker/actions", false},
		{"github.com/chatworker/worker/internal/telemetry", true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			deps := goListDeps(t, tt.pkg)
			if !slices.Contains(deps, "go.opentelemetry.io/otel/propagation") {
				t.Errorf("%s does not import the propagation API", tt.pkg)
			}
			for _, h := range heavy {
				if got := slices.Contains(deps, h); got != tt.wantHeavy {
					t.Errorf("%s imports %s: %v, want %v", tt.pkg, h, got, tt.wantHeavy)
				}
			}
		})
	}
}

// goListDeps lists every package pkg imports, directly or not, as the go
// command sees them.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}
