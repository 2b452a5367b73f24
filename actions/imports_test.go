package actions_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPublishingPullsInNoAPIClient: an app that publishes commands or reads
// results imports actions, and must not pull in the Chat API client or its
// CA bundle (a blank import that lands roots in every binary). The
// execute row is the control: it does import them, so a broken listing
// cannot pass the test by finding nothing.
func TestPublishingPullsInNoAPIClient(t *testing.T) {
	forbidden := []string{"github.com/chatworker/worker/chat", "golang.org/x/crypto/x509roots/fallback"}
	tests := []struct {
		pkg      string
		wantSome bool
	}{
		{"github.com/chatworker/worker/actions", false},
		{"github.com/chatworker/worker/execute", true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			deps := goListDeps(t, tt.pkg)
			for _, f := range forbidden {
				if got := slices.Contains(deps, f); got != tt.wantSome {
					t.Errorf("%s imports %s: %v, want %v", tt.pkg, f, got, tt.wantSome)
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
