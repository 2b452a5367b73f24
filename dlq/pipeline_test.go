package dlq

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pipeline is a real worker on an embedded server, executing against a
// simulator that fails every call until the test fixes it, and the queue.
type pipeline struct {
	*workertest.Harness
	js   jetstream.JetStream
	sim  *chatsim.Server
	q    *Queue
	topo consumer.Topology
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	// The simulator does not honour Idempotency-Key here, so a command
	// executed twice would show as two effects.
	h := workertest.New(t,
		workertest.WithSim(func(c *chatsim.Config) {
			c.HonourIdempotencyKey = false
			c.Faults = chatsim.Faults{ErrorRate: 1}
		}),
		workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}),
		workertest.WithConfig(func(c *consumer.Config) { c.Concurrency = 8 }))
	q, err := Open(t.Context(), h.JS, Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return &pipeline{Harness: h, js: h.JS, sim: h.Sim, q: q, topo: h.Config.Topology.WithDefaults()}
}

func (p *pipeline) publish(t *testing.T, cmds ...actions.Commander) {
	t.Helper()
	for _, c := range cmds {
		p.Publish(c)
	}
}

func (p *pipeline) publishRaw(t *testing.T, subject, body string) {
	t.Helper()
	p.PublishRaw(subject, "", []byte(body))
}

func (p *pipeline) waitDead(t *testing.T, n uint64) {
	t.Helper()
	workertest.Eventually(t, time.Minute, func() bool {
		c, err := p.q.Count(t.Context())
		return err == nil && c >= n
	}, "dead letters")
	if c, _ := p.q.Count(t.Context()); c != n {
		t.Fatalf("%d dead letters, want %d", c, n)
	}
}

// waitIdle waits until the worker has settled every command.
func (p *pipeline) waitIdle(t *testing.T) {
	t.Helper()
	p.Settled()
}

// results reads CHAT_RESULTS, counting results per command id.
func (p *pipeline) results(t *testing.T) map[string]int {
	t.Helper()
	st, err := p.js.Stream(t.Context(), p.topo.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var r contract.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		out[r.ID]++
	}
	return out
}

func (p *pipeline) effects() map[string]int {
	out := map[string]int{}
	for _, e := range p.sim.Effects() {
		out[e.IdempotencyKey]++
	}
	return out
}

func ids(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	sort.Strings(out)
	return out
}

// deadLetterSet makes 4 exhausted sends, 2 exhausted notes, 2 permanent
// sends (unknown chats), 1 invalid command and 1 non-JSON one.
func (p *pipeline) deadLetterSet(t *testing.T) {
	t.Helper()
	p.publish(t,
		contract.Send{ID: "send-1", ChatID: "chat-a", Content: "one"},
		contract.Send{ID: "send-2", ChatID: "chat-a", Content: "two"},
		contract.Send{ID: "send-3", ChatID: "email:jo@example.com", Content: "three", From: "agent"},
		contract.Send{ID: "send-4", ChatID: "chat-b", Content: "four"},
		contract.Note{ID: "note-1", ChatID: "chat-a", Content: "a note"},
		contract.Note{ID: "note-2", ChatID: "chat-b", Content: "another"},
	)
	p.waitDead(t, 6)
	p.sim.SetFaults(chatsim.Faults{}) // the API is fixed
	p.publish(t,
		contract.Send{ID: "perm-1", ChatID: "missing:1", Content: "to nobody"},
		contract.Archive{ID: "perm-2", ChatID: "missing:2"},
	)
	p.publishRaw(t, "chat.commands.send.chat-c", `{"id":"bad-1","type":"send","chat_id":"chat-c"}`)
	p.publishRaw(t, "chat.commands.note.chat-c", `not json`)
	p.waitDead(t, 10)
	p.waitIdle(t)
	if n := len(p.sim.Effects()); n != 0 {
		t.Fatalf("%d effects before any replay, want 0", n)
	}
}

func TestReplayFilteredSubset(t *testing.T) {
	p := newPipeline(t)
	p.deadLetterSet(t)
	ctx := t.Context()

	all, err := p.q.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	classes := map[contract.Class]int{}
	for _, e := range all.Entries {
		classes[e.Class()]++
	}
	if want := map[contract.Class]int{contract.ClassExhausted: 6, contract.ClassPermanent: 2, contract.ClassInvalid: 2}; !mapsEqual(classes, want) {
		t.Fatalf("classes %v, want %v", classes, want)
	}

	f, err := ParseFilter(Values{Class: "exhausted", Type: "send"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := p.q.List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"send-1", "send-2", "send-3", "send-4"}
	if got := ids(sel.Entries); !slices.Equal(got, want) {
		t.Fatalf("selected %v, want %v", got, want)
	}

	// A dry run changes nothing.
	c, err := p.q.Replay(ctx, sel.Entries, ReplayOptions{DryRun: true})
	if err != nil || c.Replayed != 4 {
		t.Fatalf("dry run: %+v, %v", c, err)
	}
	if n, _ := p.q.Count(ctx); n != 10 {
		t.Fatalf("dry run left %d dead letters, want 10", n)
	}

	var steps []Step
	c, err = p.q.Replay(ctx, sel.Entries, ReplayOptions{Rate: 1000, Progress: func(s Step) { steps = append(steps, s) }})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if c != (Counts{Replayed: 4}) || len(steps) != 4 || steps[3].Done != 4 || steps[3].Total != 4 {
		t.Fatalf("counts %+v, %d steps", c, len(steps))
	}
	workertest.Eventually(t, time.Minute, func() bool { return len(p.results(t)) == 4 }, "results of the replayed commands")
	p.waitIdle(t)

	if got := p.results(t); !mapsEqual(got, map[string]int{"send-1": 1, "send-2": 1, "send-3": 1, "send-4": 1}) {
		t.Errorf("results %v, want one per replayed command", got)
	}
	if got := p.effects(); !mapsEqual(got, map[string]int{"send-1": 1, "send-2": 1, "send-3": 1, "send-4": 1}) {
		t.Errorf("effects %v, want one per replayed command", got)
	}
	for _, e := range p.sim.Effects() {
		if e.IdempotencyKey == "send-3" && (e.ChatID != "email:jo@example.com" || e.From != "agent" || e.Content != "three") {
			t.Errorf("send-3 effect %+v: the command changed on its way back", e)
		}
	}
	left, err := p.q.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(left.Entries), []string{"", "bad-1", "note-1", "note-2", "perm-1", "perm-2"}; !slices.Equal(got, want) {
		t.Errorf("left in CHAT_DLQ: %v, want %v", got, want)
	}
}

func TestReplaySkipsInvalidAndRaw(t *testing.T) {
	p := newPipeline(t)
	p.deadLetterSet(t)
	ctx := t.Context()
	sel, err := p.q.List(ctx, Filter{Classes: []contract.Class{contract.ClassInvalid}})
	if err != nil || len(sel.Entries) != 2 {
		t.Fatalf("invalid: %d, %v", len(sel.Entries), err)
	}
	c, err := p.q.Replay(ctx, sel.Entries, ReplayOptions{})
	if err != nil || c != (Counts{Skipped: 2}) {
		t.Fatalf("without --include-invalid: %+v, %v", c, err)
	}
	var reasons []string
	c, err = p.q.Replay(ctx, sel.Entries, ReplayOptions{IncludeInvalid: true, Progress: func(s Step) {
		if s.Action == Skipped {
			reasons = append(reasons, s.Reason)
		}
	}})
	if err != nil || c != (Counts{Replayed: 1, Skipped: 1}) {
		t.Fatalf("with --include-invalid: %+v, %v", c, err)
	}
	if len(reasons) != 1 || !strings.Contains(reasons[0], "not JSON") {
		t.Errorf("skip reasons %q: want the raw one explained", reasons)
	}
	// The invalid command dies again, as a new dead letter.
	p.waitIdle(t)
	workertest.Eventually(t, time.Minute, func() bool {
		s, err := p.q.List(ctx, Filter{ID: "bad-1"})
		return err == nil && len(s.Entries) == 1 && s.Entries[0].Letter.Headers[ReplayedFromHeader] != nil
	}, "the invalid command to die again")
}

func TestReplayInterruptedAndRunAgain(t *testing.T) {
	p := newPipeline(t)
	p.deadLetterSet(t)
	ctx := t.Context()
	f := Filter{Classes: []contract.Class{contract.ClassExhausted}}
	sel, err := p.q.List(ctx, f)
	if err != nil || len(sel.Entries) != 6 {
		t.Fatalf("list: %d, %v", len(sel.Entries), err)
	}

	// Die after the third republish is stored and before its dead letter
	// is removed: the worst moment.
	crash := errors.New("killed")
	published := 0
	c, err := p.q.Replay(ctx, sel.Entries, ReplayOptions{afterPublish: func(Entry) error {
		if published++; published == 3 {
			return crash
		}
		return nil
	}})
	if !errors.Is(err, crash) || c.Replayed != 2 {
		t.Fatalf("first run: %+v, %v", c, err)
	}
	// Let the worker execute the third republish before the second run, so
	// only the stream's duplicate detection can keep it from running twice.
	workertest.Eventually(t, time.Minute, func() bool { return len(p.results(t)) == 3 }, "three results")

	sel, err = p.q.List(ctx, f)
	if err != nil || len(sel.Entries) != 4 {
		t.Fatalf("after the crash: %d left, %v; want 4", len(sel.Entries), err)
	}
	c, err = p.q.Replay(ctx, sel.Entries, ReplayOptions{})
	if err != nil || c != (Counts{Replayed: 4, Already: 1}) {
		t.Fatalf("second run: %+v, %v", c, err)
	}
	workertest.Eventually(t, time.Minute, func() bool { return len(p.results(t)) == 6 }, "six results")
	p.waitIdle(t)

	want := map[string]int{"send-1": 1, "send-2": 1, "send-3": 1, "send-4": 1, "note-1": 1, "note-2": 1}
	if got := p.results(t); !mapsEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	if got := p.effects(); !mapsEqual(got, want) {
		t.Errorf("effects %v, want %v", got, want)
	}
	if n, _ := p.q.Count(ctx); n != 4 {
		t.Errorf("%d dead letters left, want the 4 not exhausted", n)
	}
}

func TestShowAndPurge(t *testing.T) {
	p := newPipeline(t)
	p.deadLetterSet(t)
	ctx := t.Context()
	e, err := p.q.Get(ctx, "perm-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.Class() != contract.ClassPermanent || e.Letter.Error.APIStatus != 404 || e.ChatID != "missing:1" || e.Type != "send" {
		t.Errorf("perm-1: %+v", e)
	}
	bySeq, err := p.q.Get(ctx, strconv.FormatUint(e.Seq, 10))
	if err != nil || bySeq.ID != "perm-1" {
		t.Errorf("by sequence: %+v, %v", bySeq, err)
	}
	if _, err := p.q.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	sel, err := p.q.List(ctx, Filter{Types: []string{"note"}, ChatID: "chat-a"})
	if err != nil || len(sel.Entries) != 1 || sel.Entries[0].ID != "note-1" {
		t.Fatalf("note on chat-a: %+v, %v", sel, err)
	}
	sel, err = p.q.List(ctx, Filter{Classes: []contract.Class{contract.ClassExhausted}, Limit: 2})
	if err != nil || len(sel.Entries) != 2 || sel.Matched != 6 {
		t.Fatalf("limit: %d of %d, %v", len(sel.Entries), sel.Matched, err)
	}
	n, err := p.q.Purge(ctx, sel.Entries)
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if c, _ := p.q.Count(ctx); c != 8 {
		t.Errorf("%d left after purging 2 of 10", c)
	}
	future, err := p.q.List(ctx, Filter{Since: time.Now().Add(time.Hour)})
	if err != nil || len(future.Entries) != 0 {
		t.Errorf("since the future: %d, %v", len(future.Entries), err)
	}
	past, err := p.q.List(ctx, Filter{Until: time.Now().Add(-time.Hour)})
	if err != nil || len(past.Entries) != 0 {
		t.Errorf("until an hour ago: %d, %v", len(past.Entries), err)
	}
}

func TestOpenWithoutStream(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	_, err := Open(t.Context(), js, Config{})
	if !errors.Is(err, ErrNoStream) || !strings.Contains(err.Error(), "worker provision") {
		t.Fatalf("err = %v, want ErrNoStream naming `worker provision`", err)
	}
}

func TestRepublishDropsNatsHeaders(t *testing.T) {
	js, q := newQueue(t)
	e := Entry{Seq: 7, ID: "x-1", Letter: contract.DeadLetter{
		Command: json.RawMessage(`{"id":"x-1","type":"archive","chat_id":"c"}`),
		Subject: "chat.commands.archive.c",
		Headers: map[string][]string{"Nats-Msg-Id": {"x-1"}, "Nats-Expected-Last-Sequence": {"1"}, "traceparent": {"00-abc"}},
		Error:   contract.ErrorInfo{Class: contract.ClassExhausted},
	}}
	ack, err := q.republish(t.Context(), e)
	if err != nil || ack.Duplicate {
		t.Fatalf("republish: %+v, %v", ack, err)
	}
	st, _ := js.Stream(t.Context(), "CHAT_COMMANDS")
	m, err := st.GetMsg(t.Context(), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(nats.MsgIdHdr); got != "x-1:replay:7" {
		t.Errorf("Nats-Msg-Id %q", got)
	}
	if m.Header.Get("traceparent") != "00-abc" || m.Header.Get(ReplayedFromHeader) != "CHAT_DLQ:7" || m.Header.Get("Nats-Expected-Last-Sequence") != "" {
		t.Errorf("headers %v", m.Header)
	}
	if ack, err := q.republish(t.Context(), e); err != nil || !ack.Duplicate {
		t.Errorf("second republish: %+v, %v; want a duplicate", ack, err)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRepublishIsByteExact: a command whose JSON layout the dead letter's
// "command" field would change (white space, field order) goes back to the
// stream byte for byte, from "raw".
func TestRepublishIsByteExact(t *testing.T) {
	js, q := newQueue(t)
	original := []byte("{ \"type\": \"archive\",\n  \"id\": \"x-2\", \"chat_id\": \"c\" }")
	e := Entry{Seq: 9, ID: "x-2", Letter: contract.DeadLetter{
		Command: json.RawMessage(original),
		Raw:     original,
		Subject: "chat.commands.archive.c",
		Error:   contract.ErrorInfo{Class: contract.ClassExhausted},
	}}
	ack, err := q.republish(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(t.Context(), "CHAT_COMMANDS")
	m, err := st.GetMsg(t.Context(), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != string(original) {
		t.Errorf("republished %q, want the original bytes %q", m.Data, original)
	}
}

// newQueue provisions the streams on a fresh server, with no worker.
func newQueue(t *testing.T) (jetstream.JetStream, *Queue) {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	q, err := Open(t.Context(), js, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return js, q
}
