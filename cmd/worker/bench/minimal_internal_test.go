package bench

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// minimalWorld is a server with the worker's streams and consumer, one
// command waiting, and an API address nothing listens on.
func minimalWorld(t *testing.T) (natsURL, api string, js jetstream.JetStream, topo consumer.Topology) {
	t.Helper()
	s := natstest.RunServer(t)
	_, js = natstest.Connect(t, s)
	topo = consumer.Topology{}.WithDefaults()
	if _, err := consumer.Provision(t.Context(), js, topo); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api = "http://" + l.Addr().String() + "/chat/v1"
	l.Close()
	pub := newPublisher(js, topo.Subjects, Scenario{Commands: 1, Chats: 1})
	if err := pub.publish(t.Context(), 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	return s.ClientURL(), api, js, topo
}

// runMinimal runs the loop until until is true or 30 seconds pass, and
// returns what the loop wrote to o.Errors (a file, which the loop's
// goroutines and the test can share).
func runMinimal(t *testing.T, o MinimalOptions, until func(said string) bool) string {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "errors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o.Errors = f
	said := func() string {
		b, _ := os.ReadFile(f.Name())
		return string(b)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- MinimalLoop(ctx, o) }()
	deadline := time.Now().Add(30 * time.Second)
	for !until(said()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("the loop: %v", err)
	}
	return said()
}

// A command the minimal loop cannot complete (here the API is unreachable)
// comes again, and the loop says why on its error writer: a bench run that
// never ends must be able to tell what went wrong in the loop's process.
func TestMinimalLoopTellsFailures(t *testing.T) {
	natsURL, api, _, _ := minimalWorld(t)
	got := runMinimal(t, MinimalOptions{NATSURL: natsURL, APIURL: api, Concurrency: 1, Store: true},
		func(said string) bool { return strings.Contains(said, "a command failed and comes again") })
	if !strings.Contains(got, "a command failed and comes again") || !strings.Contains(got, "failed deliveries in all") {
		t.Errorf("the loop did not tell its failures; it wrote %q", got)
	}
}

// A command whose record is stored already (an earlier delivery made the
// call, then its publish failed) gets its result without a second call:
// the loop does not fail it forever because the record is there.
func TestMinimalLoopRedeliveryAfterTheCall(t *testing.T) {
	natsURL, api, js, topo := minimalWorld(t)
	kv, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "BENCH_MINIMAL", History: 1, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), floorKey(commandID(0)), minimalRecord); err != nil {
		t.Fatal(err)
	}
	results := func() uint64 {
		info, err := js.Stream(t.Context(), topo.ResultsStream)
		if err != nil {
			return 0
		}
		return info.CachedInfo().State.Msgs
	}
	said := runMinimal(t, MinimalOptions{NATSURL: natsURL, APIURL: api, Concurrency: 1, Store: true},
		func(string) bool { return results() == 1 })
	if n := results(); n != 1 {
		t.Errorf("%d results, want 1; the loop said %q", n, said)
	}
}

// Setup steps try again while a loaded cluster does not answer: a request
// left unanswered is cut off after its share of time, not after the whole
// run's, and retry gives up with the last error when its time is up.
func TestRetry(t *testing.T) {
	var calls int
	err := retry(t.Context(), time.Minute, 50*time.Millisecond, func(ctx context.Context) error {
		if calls++; calls < 3 {
			<-ctx.Done() // a request nobody answers
			return ctx.Err()
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("after two unanswered tries: %v, %d calls; want success on the third", err, calls)
	}
	err = retry(t.Context(), 0, time.Second, func(context.Context) error { return net.ErrClosed })
	if err != net.ErrClosed {
		t.Errorf("with no time left: %v, want the try's own error", err)
	}
}

// A command whose PubAck did not come (here: no stream yet, as when a
// loaded cluster drops the answer) is published again until it is stored,
// once, rather than failing the run.
func TestPublishSendsAgainWhatWasNotAcknowledged(t *testing.T) {
	s := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, s)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	topo := consumer.Topology{}.WithDefaults()
	provisioned := make(chan error, 1)
	go func() {
		// After the client's own tries (two, 250 ms apart) have failed.
		time.Sleep(1500 * time.Millisecond)
		_, err := consumer.Provision(t.Context(), js, topo)
		provisioned <- err
	}()
	pub := newPublisher(js, topo.Subjects, Scenario{Commands: 5, Chats: 1})
	if err := pub.publish(t.Context(), 0, 5, nil); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := <-provisioned; err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), topo.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 5 {
		t.Errorf("%d commands stored, want 5", n)
	}
}
