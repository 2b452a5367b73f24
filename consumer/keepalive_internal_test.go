package consumer

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// stuckMsg is a queued command whose InProgress does not return until
// released (a slow connection, say).
type stuckMsg struct {
	jetstream.Msg
	entered chan struct{}
	release chan struct{}
}

func (m *stuckMsg) InProgress() error {
	m.entered <- struct{}{}
	<-m.release
	return nil
}

// Telling JetStream about queued commands must not hold the lock that every
// dispatch takes: a slow InProgress on one queued message must not hold up
// the dispatch of another chat's command.
func TestQueuedKeepAliveHoldsNoLockWhileItTalksToJetStream(t *testing.T) {
	w, err := New(nil, nil, nil, nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	stuck := &stuckMsg{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w.lanes.add("a", queued{msg: stuck})
	w.lanes.add("a", queued{msg: stuck}) // queued behind the first: the lane holds it

	done := make(chan struct{})
	go func() {
		defer close(done)
		w.order.keepQueuedAliveOnce(nil)
	}()
	<-stuck.entered // InProgress under way, and stuck
	added := make(chan struct{})
	go func() {
		w.lanes.add("b", queued{msg: stuck})
		close(added)
	}()
	select {
	case <-added:
	case <-time.After(30 * time.Second):
		t.Error("a dispatch waited for the keep-alive's InProgress calls")
	}
	close(stuck.release)
	for range 2 {
		select {
		case <-stuck.entered:
		case <-done:
		}
	}
	<-done
	<-added
}
