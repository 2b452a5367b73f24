package bench

import (
	"context"
	"encoding/base64"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkServerHeap splits the NATS server's memory growth that the soak
// measures as a whole: the live heap of an embedded server (after a
// collection) per item written, for each shape of write a command makes,
// with a value of the size the soak stores. What bounds each part differs:
// a key of the idempotency bucket is held as long as the record (24 hours
// by default), a Nats-Msg-Id as long as the duplicate window (10 minutes).
//
//	go test -run '^$' -bench ServerHeap -benchtime 1x ./cmd/worker/bench
func BenchmarkServerHeap(b *testing.B) {
	const n = 100000
	for _, shape := range []string{"kv-key", "msg-id", "plain"} {
		b.Run(shape, func(b *testing.B) {
			var perItem float64
			for b.Loop() {
				perItem = serverHeap(b, shape, n)
			}
			b.ReportMetric(perItem, "heap-B/item")
		})
	}
}

func serverHeap(b *testing.B, shape string, n int) float64 {
	b.Helper()
	dir := b.TempDir()
	ns, err := server.NewServer(natsOptions(dir))
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown(); _ = os.RemoveAll(dir) })
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal(errNotReady)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	val := []byte(strings.Repeat("x", 600))
	var kv jetstream.KeyValue
	if shape == "kv-key" {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "HEAP", History: 1, TTL: 24 * time.Hour})
	} else {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "HEAP", Subjects: []string{"heap.>"}, Duplicates: 10 * time.Minute})
	}
	if err != nil {
		b.Fatal(err)
	}
	h0 := liveHeap()
	for i := range n {
		id := commandID(i)
		switch shape {
		case "kv-key": // a record under the base64 of a command id, as the idempotency store keys it
			_, err = kv.Create(ctx, base64.RawURLEncoding.EncodeToString([]byte(id)), val)
		case "msg-id": // a result or a command: one Nats-Msg-Id each, 1000 subjects
			_, err = js.PublishMsgAsync(&nats.Msg{Subject: "heap.chat-" + strconv.Itoa(i%1000), Data: val}, jetstream.WithMsgID(id+":"+strconv.Itoa(i)))
		case "plain": // the same without a Nats-Msg-Id
			_, err = js.PublishMsgAsync(&nats.Msg{Subject: "heap.chat-" + strconv.Itoa(i%1000), Data: val})
		}
		if err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			waitPublished(ctx, b, js)
		}
	}
	waitPublished(ctx, b, js)
	// The file store keeps the buffers of recently used blocks for 10
	// seconds: wait them out, to measure what stays. (Per-block subject
	// state lasts 2 minutes idle and is still counted: an upper bound.)
	select {
	case <-time.After(11 * time.Second):
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	return float64(liveHeap()-h0) / float64(n)
}

func waitPublished(ctx context.Context, b *testing.B, js jetstream.JetStream) {
	b.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
}

// liveHeap is this process's heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
