package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ModeMinimal is the minimal consume-call-publish-ack loop in a process of
// its own, as a worker process runs: the baseline `worker bench --against`
// sets the workers beside. It is ModeLimit plus a result published and
// stored (its PubAck awaited) before the ack, and it crosses a process
// boundary as the workers do, so a worker's share of it is what the
// worker's own work costs, not where it runs.
const ModeMinimal Mode = "minimal"

// ModeMinimalStore is the minimal loop plus the two store round trips a
// worker's first delivery makes (see MinimalLoop), in its own process: what
// a worker that keeps the guarantees and did nothing else would reach.
const ModeMinimalStore Mode = "minimal-store"

// MinimalOptions configure the minimal loop.
type MinimalOptions struct {
	NATSURL     string // the bench's NATS server
	APIURL      string // the bench's API simulator
	Concurrency int    // goroutines taking commands
	// Store adds the two store round trips of a worker's first delivery: a
	// read of the command's key in a key-value bucket before the call, and
	// a create of a record about the size of the worker's after it, awaited
	// before the result is published.
	Store    bool
	Replicas int       // the bucket's replicas
	Errors   io.Writer // where failed commands are told; nil for nowhere
}

// MinimalLoop runs the minimal loop until ctx ends: o.Concurrency goroutines
// take commands from the worker's durable consumer (provisioned beforehand),
// decode only what the call needs, make the API call through the same
// client the worker uses, publish a result to the command's result subject
// (its id as Nats-Msg-Id) and wait for the PubAck, then ack. No per-chat
// order, no idempotency store, no validation, no metrics. A command that
// fails comes again a tenth of a second later, and is told to o.Errors
// (the first few of them): a run that never ends says why.
// `worker bench --minimal-loop` runs it.
func MinimalLoop(ctx context.Context, o MinimalOptions) error {
	if o.Concurrency < 1 {
		return fmt.Errorf("bench: minimal loop with concurrency %d", o.Concurrency)
	}
	if o.Errors == nil {
		o.Errors = io.Discard
	}
	nc, js, err := dialJS(o.NATSURL, "bench minimal loop")
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := consumer.Topology{}.WithDefaults()
	var (
		cons jetstream.Consumer
		kv   jetstream.KeyValue
	)
	// On a loaded cluster a JetStream request can go unanswered, and a
	// bucket of three replicas can take longer to place than a request
	// waits: each step is tried again for up to a minute.
	err = retry(ctx, time.Minute, 10*time.Second, func(ctx context.Context) (err error) {
		cons, err = js.Consumer(ctx, topo.CommandsStream, topo.Durable)
		return err
	})
	if err != nil {
		return fmt.Errorf("the commands' consumer: %w", err)
	}
	if o.Store {
		err = retry(ctx, time.Minute, 10*time.Second, func(ctx context.Context) (err error) {
			kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "BENCH_MINIMAL", History: 1, TTL: time.Hour, Replicas: max(o.Replicas, 1)})
			return err
		})
		if err != nil {
			return fmt.Errorf("the records' bucket: %w", err)
		}
	}
	client, err := chat.New(chat.WithBaseURL(o.APIURL), chat.WithCredentials(chat.Credentials{APIKey: apiKey, SiteToken: siteToken}),
		chat.WithMaxConnsPerHost(o.Concurrency), chat.WithRateLimit(false))
	if err != nil {
		return err
	}
	// The worker's pull timing (consumer.pullTiming): a pull request the
	// server no longer holds is noticed within two seconds, not thirty.
	it, err := cons.Messages(jetstream.PullMaxMessages(o.Concurrency), jetstream.PullExpiry(5*time.Second),
		jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return err
	}
	msgs := make(chan jetstream.Msg, o.Concurrency)
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for range o.Concurrency {
		wg.Go(func() {
			for msg := range msgs {
				if err := minimalOne(ctx, js, kv, client, topo.Subjects, msg); err != nil {
					_ = msg.NakWithDelay(100 * time.Millisecond)
					if n := failed.Add(1); n <= 10 {
						fmt.Fprintf(o.Errors, "minimal loop: a command failed and comes again: %v\n", err)
					}
				}
			}
		})
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	feed(it, msgs)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(o.Errors, "minimal loop: %d failed deliveries in all\n", n)
	}
	return nil
}

// minimalOne is one command of the minimal loop.
func minimalOne(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, client *chat.Client, subjects contract.Subjects, msg jetstream.Msg) error {
	var cmd struct {
		ID      string `json:"id"`
		ChatID  string `json:"chat_id"`
		Content string `json:"content"`
		From    string `json:"from"`
	}
	if err := json.Unmarshal(msg.Data(), &cmd); err != nil {
		return msg.Term()
	}
	key := floorKey(cmd.ID)
	result := contract.Result{ID: cmd.ID, Type: contract.TypeSend, ChatID: cmd.ChatID, Status: "succeeded", Attempts: 1}
	called := false
	if kv != nil {
		// A record means an earlier delivery made the call and failed
		// after it (a publish that timed out): publish the result again
		// without a second call, as the worker does.
		_, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			called = true
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("read %s: %w", key, err)
		}
	}
	if !called {
		_, resp, err := client.SendMessage(ctx, cmd.ChatID, chat.SendMessageRequest{Content: cmd.Content, From: cmd.From},
			chat.WithIdempotencyKey(cmd.ID))
		if err != nil {
			return err
		}
		result.APIStatus, result.Response = resp.StatusCode, resp.Body
		if kv != nil {
			if _, err := kv.Create(ctx, key, minimalRecord); err != nil {
				return err
			}
		}
	}
	result.CompletedAt = time.Now().UTC()
	res, err := json.Marshal(result)
	if err != nil {
		return err
	}
	out := nats.NewMsg(subjects.Result(contract.TypeSend, cmd.ChatID))
	out.Data = res
	out.Header.Set(nats.MsgIdHdr, cmd.ID)
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return err
	}
	return msg.Ack()
}

// minimalRecord is about the size of the worker's succeeded record.
var minimalRecord = []byte(`{"id":"bench-000000000","hash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","state":"succeeded","attempts":1,"api_status":200,"digest":"0123456789abcdef","seq":1}`)

// minimalCmd is the minimal loop as a child process: bin is a worker
// binary that has `worker bench --minimal-loop`.
func minimalCmd(bin string, e *env, sc Scenario) *exec.Cmd {
	cmd := exec.Command(bin, "bench", "--minimal-loop", "--minimal-nats-url", e.ns.ClientURL(),
		"--minimal-api-url", e.api, "--minimal-concurrency", fmt.Sprint(sc.Concurrency), fmt.Sprintf("--minimal-store=%t", sc.Mode == ModeMinimalStore), "--minimal-replicas", fmt.Sprint(max(sc.Replicas, 1)))
	cmd.Env = os.Environ()
	return cmd
}
