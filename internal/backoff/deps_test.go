package backoff

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestTheWorkerShipsOneBackoff: OpenTelemetry's exporters use
// cenkalti/backoff v5, so the worker uses it too rather than linking a
// second major version into the binary.
func TestTheWorkerShipsOneBackoff(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "github.com/chatworker/worker/cmd/worker").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/chatworker/worker/internal/backoff") {
		t.Fatal("the worker's dependencies do not include internal/backoff: the listing is wrong")
	}
	var found []string
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/cenkalti/backoff") {
			found = append(found, d)
		}
	}
	if !slices.Equal(found, []string{"github.com/cenkalti/backoff/v5"}) {
		t.Errorf("the worker links %v, want only github.com/cenkalti/backoff/v5", found)
	}
}
