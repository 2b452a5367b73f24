package consumer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go"
)

func TestCommandsBecomeAPICallsAndResults(t *testing.T) {
	p := newPipeline(t)
	send := p.Publish(actions.Send{ChatID: "email:jo@example.com", Content: "Hello Jo", From: contract.FromAgent, Metadata: []byte(`{"order":"A-17"}`)})
	note := p.Publish(actions.Note{ChatID: "email:jo@example.com", Content: "private"})
	arch := p.Publish(actions.Archive{ChatID: "visitor-42"})

	results := p.Results(3)
	p.Settled()
	byID := map[string]actions.Result{}
	for _, r := range results {
		byID[r.ID] = r
	}
	for _, cmd := range []actions.Command{send, note, arch} {
		r, ok := byID[cmd.ID]
		switch {
		case !ok:
			t.Errorf("no result for %s %s", cmd.Type, cmd.ID)
		case r.Status != contract.StatusSucceeded || r.Attempts != 1 || r.APIStatus != 200 || r.Type != cmd.Type || r.ChatID != cmd.ChatID:
			t.Errorf("result for %s = %+v", cmd.Type, r)
		case r.CompletedAt.IsZero():
			t.Errorf("result for %s has no completed_at", cmd.Type)
		}
	}
	if got := string(byID[send.ID].Metadata); got != `{"order":"A-17"}` {
		t.Errorf("metadata echoed as %s", got)
	}
	if len(byID[send.ID].Response) < 3 || !strings.Contains(string(byID[send.ID].Response), "Hello Jo") {
		t.Errorf("send result response = %s, want the API's message", byID[send.ID].Response)
	}

	effects := p.Sim.Effects()
	if len(effects) != 3 {
		t.Fatalf("simulator saw %d effects, want 3: %+v", len(effects), effects)
	}
	for _, e := range effects {
		switch e.IdempotencyKey {
		case send.ID:
			if e.Op != "send" || e.ChatID != "email:jo@example.com" || e.Content != "Hello Jo" || e.From != "agent" {
				t.Errorf("send effect = %+v", e)
			}
		case note.ID:
			if e.Op != "note" || e.Content != "private" {
				t.Errorf("note effect = %+v", e)
			}
		case arch.ID:
			if e.Op != "archive" || e.ChatID != "visitor-42" {
				t.Errorf("archive effect = %+v", e)
			}
		default:
			t.Errorf("effect with unknown idempotency key: %+v", e)
		}
	}
}

func TestBadInputBecomesInvalidDeadLettersAndDoesNotStopGoodCommands(t *testing.T) {
	p := newPipeline(t)
	bad := []struct {
		subject, body, problem string
	}{
		{"chat.commands.send.abc", `not json at all`, "not a valid JSON object"},
		{"chat.commands.send.abc", `{"id":"u1","type":"send","chat_id":"abc","contnet":"x"}`, `unknown field "contnet"`},
		{"chat.commands.send.abc", `{"id":"m1","type":"send","chat_id":"abc"}`, `needs "content"`},
		{"chat.commands.note.abc", `{"id":"d1","type":"send","chat_id":"abc","content":"x"}`, `body says type "send"`},
		{"chat.commands.send.abd", `{"id":"d2","type":"send","chat_id":"abc","content":"x"}`, `carries "abd"`},
		{"chat.commands.delete.abc", `{"id":"t1","type":"delete","chat_id":"abc"}`, `unknown command type "delete"`},
		{"chat.commands.send.abc", fmt.Sprintf(`{"id":"b1","type":"send","chat_id":"abc","content":%q}`, strings.Repeat("x", 20000)), "limit is 16384"},
	}
	for i, b := range bad {
		p.PublishRaw(b.subject, fmt.Sprint("bad-", i), []byte(b.body))
	}
	good := p.Publish(actions.Send{ChatID: "abc", Content: "still works"})

	dls := p.DeadLetters(len(bad))
	results := p.Results(1)
	p.Settled()
	if results[0].ID != good.ID {
		t.Errorf("result = %+v, want the good command's", results[0])
	}
	for i, d := range dls {
		b := bad[i] // one worker, but concurrent: match by subject and body
		for _, cand := range bad {
			if cand.subject == d.Subject && (string(d.Command) == cand.body || string(d.Raw) == cand.body) {
				b = cand
			}
		}
		if d.Error.Class != contract.ClassInvalid {
			t.Errorf("dead letter for %s has class %q, want invalid", b.subject, d.Error.Class)
		}
		if !strings.Contains(d.Error.Message, b.problem) {
			t.Errorf("dead letter message %q does not say %q", d.Error.Message, b.problem)
		}
		if d.Subject != b.subject || d.Worker == "" || d.Attempts != 0 || d.Headers["Nats-Msg-Id"] == nil {
			t.Errorf("dead letter = %+v", d)
		}
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("simulator saw %d effects, want only the good command's", n)
	}
}

func TestNonJSONDeadLetterKeepsTheBytes(t *testing.T) {
	p := newPipeline(t)
	raw := []byte("\xff\x00 not json {")
	p.PublishRaw("chat.commands.send.abc", "raw-1", raw)
	d := p.DeadLetters(1)[0]
	if d.Command != nil || string(d.Raw) != string(raw) {
		t.Errorf("dead letter command=%s raw=%q, want raw bytes %q", d.Command, d.Raw, raw)
	}
	m := p.Records("CHAT_DLQ", 1)[0]
	if !strings.Contains(string(m.Data), `"raw":"`+base64.StdEncoding.EncodeToString(raw)+`"`) {
		t.Errorf("raw is not base64 in %s", m.Data)
	}
	if m.Subject != "chat.dlq.send.abc" {
		t.Errorf("dead letter subject %q", m.Subject)
	}
}

func TestUnparsableSubjectGoesToInvalidDeadLetterSubject(t *testing.T) {
	p := newPipeline(t)
	p.PublishRaw("chat.commands.frobnicate.abc", "x", []byte(`{}`))
	m := p.Records("CHAT_DLQ", 1)[0]
	if m.Subject != "chat.dlq.invalid.frobnicate.abc" {
		t.Errorf("dead letter subject = %q", m.Subject)
	}
}

func TestPermanentAPIErrorIsDeadLettered(t *testing.T) {
	p := newPipeline(t)
	cmd := p.Publish(actions.Send{ChatID: "missing:ghost", Content: "hello?"})
	d := p.DeadLetters(1)[0]
	p.Settled()
	if d.Error.Class != contract.ClassPermanent || d.Error.APIStatus != 404 || d.Error.APICode != 4004 || d.Attempts != 1 {
		t.Errorf("dead letter error = %+v attempts %d", d.Error, d.Attempts)
	}
	if d.FirstAttemptAt == nil || d.LastAttemptAt == nil {
		t.Error("dead letter lacks attempt times")
	}
	if !strings.Contains(string(d.Command), cmd.ID) || d.Subject != "chat.commands.send.missing%3Aghost" {
		t.Errorf("dead letter = %+v", d)
	}
}

func TestRetryableFailuresAreRetriedAndNothingIsDoubled(t *testing.T) {
	p := newPipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 0.3, DropRate: 0.2}))
	const n = 60
	ids := map[string]bool{}
	for i := range n {
		cmd := p.Publish(actions.Send{ChatID: fmt.Sprint("chat-", i%7), Content: fmt.Sprint("message ", i)})
		ids[cmd.ID] = true
	}
	results := p.Results(n)
	p.Settled()
	retried := 0
	for _, r := range results {
		if !ids[r.ID] {
			t.Errorf("unexpected result %+v", r)
		}
		delete(ids, r.ID)
		if r.Attempts > 1 {
			retried++
		}
	}
	if len(ids) != 0 {
		t.Errorf("%d commands without a result", len(ids))
	}
	if retried == 0 {
		t.Error("no command needed a retry: the faults were not injected")
	}
	for key, c := range p.EffectsByKey() {
		if c != 1 {
			t.Errorf("command %s took effect %d times", key, c)
		}
	}
	if dl := p.Count("CHAT_DLQ"); dl != 0 {
		t.Errorf("%d dead letters for commands that could succeed", dl)
	}
}

func TestRetryBudgetRunsOutAsExhausted(t *testing.T) {
	p := newPipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}))
	p.Publish(actions.Note{ChatID: "abc", Content: "never lands"})
	d := p.DeadLetters(1)[0]
	p.Settled()
	if d.Error.Class != contract.ClassExhausted || d.Attempts != 3 || d.Error.APIStatus < 500 {
		t.Errorf("dead letter = %+v, attempts %d", d.Error, d.Attempts)
	}
	if !strings.Contains(d.Error.Message, "gave up after 3 attempts") {
		t.Errorf("message %q", d.Error.Message)
	}
	if !d.LastAttemptAt.After(*d.FirstAttemptAt) && !d.LastAttemptAt.Equal(*d.FirstAttemptAt) {
		t.Errorf("attempt times %v..%v", d.FirstAttemptAt, d.LastAttemptAt)
	}
}

func TestLongBackoffHandsTheCommandBackAndCountsAttemptsAcrossDeliveries(t *testing.T) {
	// Every wait is longer than the in-process maximum, so each attempt is
	// a separate delivery; the attempt count must still reach the budget.
	p := newPipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 3, InitialInterval: 40 * time.Millisecond, MaxInterval: 40 * time.Millisecond, InProcessMax: time.Microsecond}))
	p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	d := p.DeadLetters(1)[0]
	if d.Error.Class != contract.ClassExhausted || d.Attempts != 3 {
		t.Errorf("dead letter = %+v, attempts %d", d.Error, d.Attempts)
	}
}

func TestSameIDTwiceIsOneEffectAndADuplicateResult(t *testing.T) {
	p := newPipeline(t)
	cmd := p.Publish(actions.Send{ID: "order-17-shipped", ChatID: "abc", Content: "Shipped!"})
	p.Results(1)
	body := fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"Shipped!"}`, cmd.ID)
	p.PublishRaw("chat.commands.send.abc", "a new message id", []byte(body))
	results := p.Results(2)
	if results[0].Status != contract.StatusSucceeded || results[1].Status != contract.StatusDuplicate {
		t.Errorf("statuses %q, %q", results[0].Status, results[1].Status)
	}
	if string(results[1].Response) != string(results[0].Response) || results[1].APIStatus != 200 {
		t.Errorf("duplicate result does not carry the original response: %s vs %s", results[1].Response, results[0].Response)
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("%d effects, want 1", n)
	}
	// The same id with another body is a conflict.
	p.PublishRaw("chat.commands.send.abc", "third", []byte(fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"Cancelled!"}`, cmd.ID)))
	d := p.DeadLetters(1)[0]
	if d.Error.Class != contract.ClassConflict || !strings.Contains(d.Error.Message, "different body") {
		t.Errorf("dead letter = %+v", d.Error)
	}
	if n := len(p.Sim.Effects()); n != 1 {
		t.Errorf("%d effects after the conflict, want 1", n)
	}
}

// panicky panics on its first calls, then succeeds.
type panicky struct{ calls atomic.Int32 }

func (p *panicky) Execute(_ context.Context, cmd actions.Command) (contract.Outcome, error) {
	if p.calls.Add(1) <= 2 {
		panic("boom")
	}
	return contract.Outcome{APIStatus: 200, Response: []byte(`{}`)}, nil
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	p := newPipeline(t)
	// A second worker on the same consumer whose executor panics; the
	// simulator-backed worker may take some commands too, which is fine.
	exec := &panicky{}
	p.Start(exec)
	for i := range 10 {
		p.Publish(actions.Note{ChatID: fmt.Sprint("c", i), Content: "x"})
	}
	p.Results(10)
	p.Settled()
}

func TestPanicsOutlastingTheBudgetAreDeadLettered(t *testing.T) {
	p := newBarePipeline(t, workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}))
	p.Start(alwaysPanics{})
	p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	d := p.DeadLetters(1)[0]
	if d.Error.Class != contract.ClassExhausted || !strings.Contains(d.Error.Message, "panic: kaboom") || d.Attempts != 2 {
		t.Errorf("dead letter = %+v attempts %d", d.Error, d.Attempts)
	}
}

type alwaysPanics struct{}

func (alwaysPanics) Execute(context.Context, actions.Command) (contract.Outcome, error) {
	panic("kaboom")
}

func TestReplayedDeadLetterGetsAFreshBudget(t *testing.T) {
	p := newPipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}))
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	p.DeadLetters(1)
	body := fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"x"}`, cmd.ID)
	p.PublishRaw("chat.commands.send.abc", cmd.ID+":replay:1", []byte(body))
	again := p.DeadLetters(2)[1]
	if again.Error.Class != contract.ClassExhausted || again.Attempts != 3 {
		t.Errorf("replayed dead letter: %+v after %d attempts, want exhausted after 3", again.Error, again.Attempts)
	}
}

func TestCommandsPastMaxDeliverAreDeadLetteredByTheBackstop(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 1000, InitialInterval: 5 * time.Millisecond, MaxInterval: 5 * time.Millisecond, InProcessMax: time.Microsecond}))
	p.Config.Topology.MaxDeliver = 3
	p.Start(p.Executor)
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	d := p.DeadLetters(1)[0]
	p.Settled()
	if d.Error.Class != contract.ClassExhausted || !strings.Contains(d.Error.Message, "delivered the command 3 times") {
		t.Errorf("dead letter error = %+v", d.Error)
	}
	if !strings.Contains(string(d.Command), cmd.ID) || d.Attempts != 3 {
		t.Errorf("dead letter = %s, attempts %d", d.Command, d.Attempts)
	}
	// The chat is free again.
	p.Sim.SetFaults(chatsim.Faults{})
	p.Publish(actions.Send{ChatID: "abc", Content: "next"})
	p.Results(1)
}

// TestWorkersRacingOnTheSameIDs: every command is published twice (as two
// messages) and two workers, with per-chat order off so the copies can run
// at the same moment, consume them: one effect per id, and one succeeded
// plus one duplicate result.
func TestWorkersRacingOnTheSameIDs(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{LatencyJitter: 3 * time.Millisecond}))
	p.Config.Unordered = true
	p.Start(p.Executor)
	p.Start(p.Executor)
	const n = 100
	for i := range n {
		body := fmt.Sprintf(`{"id":"race-%d","type":"note","chat_id":"c%d","content":"x"}`, i, i%5)
		subject := fmt.Sprintf("chat.commands.note.c%d", i%5)
		p.PublishRaw(subject, fmt.Sprint("a-", i), []byte(body))
		p.PublishRaw(subject, fmt.Sprint("b-", i), []byte(body))
	}
	results := p.Results(2 * n)
	p.Settled()
	statuses := map[string][]string{}
	for _, r := range results {
		statuses[r.ID] = append(statuses[r.ID], r.Status)
	}
	for id, s := range statuses {
		if len(s) != 2 || (s[0] == s[1]) {
			t.Errorf("%s: results %v, want one succeeded and one duplicate", id, s)
		}
	}
	for key, c := range p.EffectsByKey() {
		if c != 1 {
			t.Errorf("%s took effect %d times", key, c)
		}
	}
}

// TestAPIDownDoesNotSpin: while the API fails every call, the worker backs
// off instead of hammering it. Within the test's span a command gets a
// handful of attempts on the backoff schedule (a spinning worker would make
// hundreds), and every command is still there to succeed once the API is
// back.
func TestAPIDownDoesNotSpin(t *testing.T) {
	p := newPipeline(t, workertest.WithFaults(chatsim.Faults{ErrorRate: 1}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 1000, InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond, InProcessMax: 50 * time.Millisecond}))
	const n = 10
	for i := range n {
		p.Publish(actions.Note{ChatID: fmt.Sprint("c", i), Content: "x"})
	}
	// Wait until every command has failed a few times.
	workertest.Eventually(t, 20*time.Second, func() bool { return p.Sim.Stats().Requests >= 5*n }, "the API saw too few calls")
	calls0 := p.Sim.Stats().Requests
	time.Sleep(time.Second) // the window in which calls are counted, not a wait for an outcome
	calls := p.Sim.Stats().Requests - calls0
	// One second at a backoff ceiling of 200 ms with full jitter is about
	// ten calls per command; allow three times that.
	if calls > 30*n {
		t.Errorf("%d API calls in a second for %d commands while the API was down: the worker spins", calls, n)
	}
	p.Sim.SetFaults(chatsim.Faults{})
	p.Results(n)
	if dl := p.Count("CHAT_DLQ"); dl != 0 {
		t.Errorf("%d dead letters", dl)
	}
}

// TestSlowCallOutlivesAckWait: an API call slower than AckWait is kept
// alive with InProgress, so JetStream does not redeliver it meanwhile.
func TestSlowCallOutlivesAckWait(t *testing.T) {
	p := newBarePipeline(t, workertest.WithFaults(chatsim.Faults{Latency: 1500 * time.Millisecond}))
	p.Config.Topology.AckWait = 600 * time.Millisecond
	p.Start(p.Executor)
	p.Publish(actions.Send{ChatID: "abc", Content: "slow"})
	r := p.Results(1)[0]
	if r.Attempts != 1 || r.Status != contract.StatusSucceeded {
		t.Errorf("result %+v", r)
	}
	cons, err := p.JS.Consumer(t.Context(), "CHAT_COMMANDS", "chat-worker")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 1 {
		t.Errorf("the command was delivered %d times, want once: it was redelivered while its call ran", info.Delivered.Consumer)
	}
}

// TestTraceContextIsCarried: a command's W3C traceparent header reaches its
// result and its dead letter.
func TestTraceContextIsCarried(t *testing.T) {
	p := newPipeline(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, body := range []string{
		`{"id":"t1","type":"send","chat_id":"abc","content":"x"}`,
		`{"id":"t2","type":"send","chat_id":"missing:x","content":"x"}`,
	} {
		var cmd actions.Command
		if err := json.Unmarshal([]byte(body), &cmd); err != nil {
			t.Fatal(err)
		}
		msg := &nats.Msg{Subject: actions.Subjects{}.Command(cmd.Type, cmd.ChatID), Data: []byte(body), Header: nats.Header{}}
		msg.Header.Set("traceparent", tp)
		if _, err := p.JS.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if r := p.Results(1)[0]; r.Traceparent != tp {
		t.Errorf("result traceparent %q", r.Traceparent)
	}
	if d := p.DeadLetters(1)[0]; d.Traceparent != tp {
		t.Errorf("dead letter traceparent %q", d.Traceparent)
	}
}

// gate holds every API call until released, counting the calls that began.
type gate struct {
	next    consumer.Executor
	calls   atomic.Int32
	release chan struct{}
}

func (g *gate) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	g.calls.Add(1)
	select {
	case <-g.release:
	case <-ctx.Done(): // a test that failed before releasing still shuts down
		return contract.Outcome{}, ctx.Err()
	}
	return g.next.Execute(ctx, cmd)
}

// TestShutdownHandsBackWorkNotStarted: commands that wait for a free slot
// when a shutdown starts go back to the stream; only the command already
// running finishes.
func TestShutdownHandsBackWorkNotStarted(t *testing.T) {
	for _, unordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("unordered=%v", unordered), func(t *testing.T) {
			p := newBarePipeline(t)
			p.Config.Concurrency, p.Config.Unordered = 1, unordered
			cons, err := consumer.Provision(t.Context(), p.JS, p.Config.Topology)
			if err != nil {
				t.Fatal(err)
			}
			g := &gate{next: p.Executor, release: make(chan struct{})}
			w, err := consumer.New(p.JS, cons, g, p.Store, p.Config)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()

			for _, chat := range []string{"a", "b", "c"} {
				p.Publish(actions.Send{ChatID: chat, Content: "hi"})
			}
			var pending int
			workertest.Eventually(t, 10*time.Second, func() bool {
				info, err := cons.Info(t.Context())
				if err != nil {
					return false
				}
				pending = info.NumAckPending
				return g.calls.Load() == 1 && pending == 3
			}, "the first call running and all 3 commands delivered (%d)", &pending)
			time.Sleep(50 * time.Millisecond) // the second command reaches the queue of work

			cancel()
			workertest.Eventually(t, 10*time.Second, w.Draining, "the worker draining")
			close(g.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := g.calls.Load(); n != 1 {
				t.Errorf("%d API calls began, want 1: work queued before the shutdown ran after it", n)
			}
			if got := len(p.Sim.Effects()); got != 1 {
				t.Errorf("%d effects, want 1", got)
			}

			// The two handed back run on the next worker, once each.
			p.Start(p.Executor)
			p.Settled()
			for key, n := range p.EffectsByKey() {
				if n != 1 {
					t.Errorf("command %s took effect %d times", key, n)
				}
			}
			if got := len(p.Sim.Effects()); got != 3 {
				t.Errorf("%d effects after the restart, want 3", got)
			}
		})
	}
}

// flakyComplete fails the first fails calls of Complete, counting them all.
type flakyComplete struct {
	idempotency.Store
	fails int32
	err   error
	calls atomic.Int32
}

func (f *flakyComplete) Complete(ctx context.Context, c *idempotency.Claim, out contract.Outcome) (idempotency.Record, error) {
	if f.calls.Add(1) <= f.fails {
		return idempotency.Record{}, f.err
	}
	return f.Store.Complete(ctx, c, out)
}

// TestRecordingASuccessIsRetried: a failed write of the success is tried
// again (four attempts in all) before the worker gives up on it, but a
// lost lease is final at once; either way the result is published and the
// command acknowledged, since the effect happened.
func TestRecordingASuccessIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name            string
		fails           int32
		err             error
		calls           int32
		recordSucceeded bool
	}{
		{"one failure", 1, errors.New("write timed out"), 2, true},
		{"three failures", 3, errors.New("write timed out"), 4, true},
		{"four failures", 4, errors.New("write timed out"), 4, false},
		{"lease lost", 1, idempotency.ErrLeaseLost, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBarePipeline(t)
			kv := p.Store
			flaky := &flakyComplete{Store: kv, fails: tc.fails, err: tc.err}
			p.Store = flaky
			p.Start(p.Executor)
			cmd := p.Publish(actions.Send{ChatID: "c1", Content: "hi"})
			if r := p.Results(1)[0]; r.ID != cmd.ID || r.Status != contract.StatusSucceeded {
				t.Fatalf("result %+v", r)
			}
			p.Settled()
			if n := flaky.calls.Load(); n != tc.calls {
				t.Errorf("%d writes of the success, want %d", n, tc.calls)
			}
			rec, err := kv.Lookup(t.Context(), cmd.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.State == idempotency.StateSucceeded; got != tc.recordSucceeded {
				t.Errorf("record state %q, want succeeded=%v", rec.State, tc.recordSucceeded)
			}
		})
	}
}

// TestConcurrencyBoundsAPICalls: --concurrency bounds the API calls in
// flight, not the commands in hand. While the calls run, as many further
// commands claim their ids, ready to take a slot the moment one frees.
func TestConcurrencyBoundsAPICalls(t *testing.T) {
	p := newBarePipeline(t)
	p.Config.Concurrency, p.Config.ShutdownGrace = 2, time.Second
	g := &gate{next: p.Executor, release: make(chan struct{})}
	p.Start(g)
	for i := range 6 {
		p.Publish(actions.Send{ChatID: fmt.Sprintf("chat-%d", i), Content: "hi"})
	}
	var claims uint64
	workertest.Eventually(t, 10*time.Second, func() bool {
		claims = p.Count("KV_CHAT_IDEMPOTENCY")
		return claims == 4
	}, "%d claims, want 4: two calling, two waiting for a slot", &claims)
	time.Sleep(100 * time.Millisecond) // room for a call or claim too many
	if n := g.calls.Load(); n != 2 {
		t.Errorf("%d API calls at once, want 2", n)
	}
	if n := p.Count("KV_CHAT_IDEMPOTENCY"); n != 4 {
		t.Errorf("%d claims, want 4", n)
	}
	close(g.release)
	p.Settled()
	if n := g.calls.Load(); n != 6 {
		t.Errorf("%d API calls, want 6", n)
	}
	for key, n := range p.EffectsByKey() {
		if n != 1 {
			t.Errorf("command %s took effect %d times", key, n)
		}
	}
}
