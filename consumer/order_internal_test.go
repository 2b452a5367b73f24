package consumer

import (
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
)

// The leader's answer is only needed on a replicated stream whose replica
// lags, which one server never shows; ask it directly here.
func TestLeaderIsHead(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := Provision(t.Context(), js, Topology{}); err != nil {
		t.Fatal(err)
	}
	w, err := New(js, nil, nil, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := actions.Subjects{}
	var seqs []uint64
	for _, chat := range []string{"a", "b", "a"} {
		ack, err := js.Publish(t.Context(), s.Command(contract.TypeArchive, chat), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	tests := []struct {
		chat string
		from uint64
		seq  uint64
		head bool
	}{
		{"a", 1, seqs[0], true},
		{"a", 1, seqs[2], false}, // the first "a" is still there
		{"a", seqs[0] + 1, seqs[2], true},
		{"b", 1, seqs[1], true},
		{"c", 1, 99, true}, // nothing at all: the command aged out
	}
	for _, tt := range tests {
		head, err := w.order.leaderIsHead(t.Context(), s.ChatCommandsFilter(tt.chat), tt.from, tt.seq)
		if err != nil || head != tt.head {
			t.Errorf("leaderIsHead(%s, from %d, seq %d) = %v, %v; want %v", tt.chat, tt.from, tt.seq, head, err, tt.head)
		}
	}
}
