package audit_test

import (
	"testing"
	"time"

	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/internal/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAppendThenRecentNewestFirst(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	// Before provisioning: nothing to list, and the first entry creates
	// the stream.
	log := audit.New(js, audit.Config{})
	if got, err := log.Recent(t.Context(), 5); err != nil || len(got) != 0 {
		t.Fatalf("Recent before any entry: %v %v", got, err)
	}
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	for i, a := range []string{audit.Pause, audit.Replay, audit.Resume} {
		if err := log.Append(t.Context(), audit.Entry{Who: "alice", Action: a, Which: "p1", Count: i + 1, At: at.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := log.Recent(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != audit.Resume || got[1].Action != audit.Replay || got[1].Count != 2 || got[0].Who != "alice" {
		t.Fatalf("Recent(2) = %+v, want resume then replay", got)
	}
	// Opening again (provision, then a console) keeps the entries.
	log, err = audit.Open(t.Context(), js, audit.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := log.Recent(t.Context(), 10); len(got) != 3 {
		t.Fatalf("after reopening: %d entries, want 3", len(got))
	}
	if err := log.Append(t.Context(), audit.Entry{Action: "chat.>"}); err == nil {
		t.Fatal("an action with subject wildcards was accepted")
	}
}
