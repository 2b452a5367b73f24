package execute

import (
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/export"
)

// TestCallsCoverTheContract: every command type of contract's table has its
// API call here, and no call is for a type the contract does not have.
func TestCallsCoverTheContract(t *testing.T) {
	got := slices.Sorted(maps.Keys(calls))
	want := slices.Sorted(slices.Values(contract.Types()))
	if !slices.Equal(got, want) {
		t.Errorf("execute has calls for %q, the contract has the types %q", got, want)
	}
}

// TestEveryTypeAgainstTheSimulator executes one command of each type against
// the simulator, so a type whose call the simulator does not serve fails
// here rather than in a deployment's first test.
func TestEveryTypeAgainstTheSimulator(t *testing.T) {
	srv := httptest.NewServer(chatsim.New(chatsim.Config{Seed: 1}))
	t.Cleanup(srv.Close)
	client, err := chat.New(chat.WithBaseURL(srv.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "key", SiteToken: "site"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	sink, err := export.OpenFile(filepath.Join(t.TempDir(), "export.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	e := &Executor{Client: client, SiteToken: "site", Exporter: &export.Exporter{Client: client, Sink: sink}}
	for _, s := range contract.Specs() {
		t.Run(string(s.Type), func(t *testing.T) {
			cmd := s.Body.Command()
			cmd.ID, cmd.ChatID = "id-"+string(s.Type), "visitor-1"
			if s.Content {
				cmd.Content = "Hello"
			}
			if err := cmd.Validate(); err != nil {
				t.Fatalf("the test's command: %v", err)
			}
			out, err := e.Execute(t.Context(), cmd)
			if err != nil {
				t.Fatalf("Execute: %v (class %s)", err, ClassOf(err))
			}
			if out.APIStatus != 200 {
				t.Errorf("API status %d, want 200", out.APIStatus)
			}
		})
	}
}
