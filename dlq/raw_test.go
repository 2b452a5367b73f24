package dlq

import (
	"strings"
	"testing"

	"github.com/chatworker/worker/contract"
)

// TestReplayExplainsAnOversizeCommand: a JSON command over the size limit
// is kept as raw bytes; the skip reason must say it was too large, not that
// it was not JSON.
func TestReplayExplainsAnOversizeCommand(t *testing.T) {
	p := newPipeline(t)
	big := `{"id":"big-1","type":"send","chat_id":"chat-c","content":"` + strings.Repeat("x", contract.MaxMessageBytes) + `"}`
	p.publishRaw(t, "chat.commands.send.chat-c", big)
	p.waitDead(t, 1)
	sel, err := p.q.List(t.Context(), Filter{})
	if err != nil || len(sel.Entries) != 1 {
		t.Fatalf("list: %d, %v", len(sel.Entries), err)
	}
	if e := sel.Entries[0]; len(e.Letter.Command) != 0 || len(e.Letter.Raw) != len(big) {
		t.Fatalf("dead letter keeps command %d bytes, raw %d bytes; want it raw", len(e.Letter.Command), len(e.Letter.Raw))
	}
	var reasons []string
	if _, err := p.q.Replay(t.Context(), sel.Entries, ReplayOptions{IncludeInvalid: true, Progress: func(s Step) {
		if s.Action == Skipped {
			reasons = append(reasons, s.Reason)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 1 || strings.Contains(reasons[0], "not JSON") || !strings.Contains(reasons[0], "over the 65536-byte limit") {
		t.Errorf("skip reasons %q: want the size named, not \"not JSON\"", reasons)
	}
}

func TestRawReason(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{`{"id":"a","content":"` + strings.Repeat("x", contract.MaxMessageBytes) + `"}`, "over the 65536-byte limit"},
		{strings.Repeat("x", contract.MaxMessageBytes+1), "over the 65536-byte limit"},
		{"\xff\xfe", "not valid UTF-8"},
		{`["a"]`, "JSON but not an object"},
		{`not json`, "was not JSON"},
	}
	for _, tt := range tests {
		if got := rawReason([]byte(tt.raw)); !strings.Contains(got, tt.want) {
			t.Errorf("rawReason(%.20q) = %q, want it to say %q", tt.raw, got, tt.want)
		}
	}
}
