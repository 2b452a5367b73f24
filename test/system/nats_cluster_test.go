package system

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/test/containers"
)

// TestNATSClusterSurvivesLeaderLoss checks what the worker's durability rests
// on: an R3 stream keeps accepting publishes when its leader's node goes away
// (stopped, crashed or cut off), and the node catches up when it returns.
func TestNATSClusterSurvivesLeaderLoss(t *testing.T) {
	containers.RequireDocker(t)
	for _, tc := range []struct {
		name          string
		lose, restore func(t testing.TB, n *containers.Node)
	}{
		{
			name:    "stop",
			lose:    func(t testing.TB, n *containers.Node) { n.Stop(t, 10*time.Second) },
			restore: func(t testing.TB, n *containers.Node) { n.Start(t) },
		},
		{
			name:    "kill",
			lose:    func(t testing.TB, n *containers.Node) { n.Kill(t) },
			restore: func(t testing.TB, n *containers.Node) { n.Start(t) },
		},
		{
			name:    "partition",
			lose:    func(t testing.TB, n *containers.Node) { n.Disconnect(t) },
			restore: func(t testing.TB, n *containers.Node) { n.Connect(t) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := containers.StartNATSCluster(t, 3)
			js := connect(t, cluster.ClientURLs(t),
				nats.MaxReconnects(-1),
				nats.ReconnectWait(100*time.Millisecond),
				// A partitioned node's connection does not break, it goes
				// silent (Docker's port proxy keeps the host side open):
				// notice within seconds, not the default minutes.
				nats.PingInterval(time.Second),
				nats.MaxPingsOutstanding(2),
			)

			// A cluster that has just become healthy may still be placing
			// its first R3 stream when a busy machine (CI runs the race
			// tests beside this one) delays the peers' votes: creating it
			// timed out once in CI. Creating a stream with the same config
			// is idempotent, so retry until the cluster answers.
			var stream jetstream.Stream
			waitFor(t, time.Minute, func() error {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				var err error
				stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
					Name:     "SYSTEM_TEST",
					Subjects: []string{"systest.>"},
					Replicas: 3,
				})
				return err
			})
			for i := range 10 {
				publish(t, js, i)
			}
			oldLeader := streamInfo(t, stream).Cluster.Leader
			if oldLeader == "" {
				t.Fatal("stream has no leader")
			}

			node := cluster.Node(t, oldLeader)
			tc.lose(t, node)

			// Publishes fail (timeout, no responders) until the other two
			// nodes elect a new leader; publish retries with the same
			// Nats-Msg-Id, so a message stored but not acknowledged is not
			// counted twice.
			for i := 10; i < 20; i++ {
				publish(t, js, i)
			}
			info := streamInfo(t, stream)
			if info.Cluster.Leader == "" || info.Cluster.Leader == oldLeader {
				t.Fatalf("leader after losing %s: %q", oldLeader, info.Cluster.Leader)
			}
			if info.State.Msgs != 20 {
				t.Fatalf("stream holds %d messages, want 20", info.State.Msgs)
			}

			tc.restore(t, node)
			cluster.WaitHealthy(t) // 200 only once the node's replicas are current
			waitFor(t, time.Minute, func() error {
				info := streamInfo(t, stream)
				for _, p := range info.Cluster.Replicas {
					if p.Name == oldLeader && p.Current && !p.Offline && p.Lag == 0 {
						return nil
					}
				}
				return fmt.Errorf("%s not a current replica: %+v", oldLeader, info.Cluster.Replicas)
			})
		})
	}
}

// publish stores message i, retrying through a leader election.
func publish(t *testing.T, js jetstream.JetStream, i int) {
	t.Helper()
	msg := &nats.Msg{
		Subject: "systest.msg",
		Data:    fmt.Appendf(nil, "message %d", i),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{fmt.Sprint("msg-", i)}},
	}
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.PublishMsg(ctx, msg)
		return err
	})
}

func streamInfo(t *testing.T, s jetstream.Stream) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		var err error
		info, err = s.Info(ctx)
		return err
	})
	return info
}

// waitFor calls f until it returns nil, failing the test with f's last error
// when d has passed.
func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || errors.Is(err, context.Canceled) && t.Context().Err() != nil {
			t.Fatalf("still failing after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
