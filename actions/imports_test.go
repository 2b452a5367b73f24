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
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	forbidden := []string{"github.com/chatworker/worker/chat", "golang.org/x/crypto/x509roots/fallback"}
	tests := []struct {
		pkg      string
		wantSome bool
	}{
		{"github.com/chatworker/worker/actions", false},
		{"github.com/chatworker/worker/actions/execute", true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", tt.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tt.pkg, err)
			}
			deps := strings.Fields(string(out))
			for _, f := range forbidden {
				if got := slices.Contains(deps, f); got != tt.wantSome {
					t.Errorf("%s imports %s: %v, want %v", tt.pkg, f, got, tt.wantSome)
				}
			}
		})
	}
}
