package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock shared by the stores of one test, so lease expiry
// is tested by moving time, not by waiting.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	srv   *server.Server
	js    jetstream.JetStream
	clock *clock
}

func setup(t testing.TB) *env {
	t.Helper()
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	return &env{srv: s, js: js, clock: newClock()}
}

// open returns a store for one "worker", named owner, on the test's bucket.
func (e *env) open(t testing.TB, owner string) *KV {
	t.Helper()
	kv, err := Open(context.Background(), e.js, Config{Owner: owner, Now: e.clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return kv
}

func mustClaim(t testing.TB, s Store, id, hash string) *Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), id, hash)
	if err != nil {
		t.Fatalf("Claim(%q): %v", id, err)
	}
	return c
}

// attempt does what the worker does before each API call.
func attempt(c *Claim, now time.Time) {
	c.Attempts++
	if c.FirstAttemptAt.IsZero() {
		c.FirstAttemptAt = now
	}
	c.LastAttemptAt = now
}

var (
	h1 = Hash([]byte(`{"id":"x","content":"hello"}`))
	h2 = Hash([]byte(`{"id":"x","content":"other"}`))
)

func TestClaimFresh(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)

	want := Record{ID: "cmd-1", Hash: h1, State: StatePending, Owner: "a/1", LeaseExpires: e.clock.Now().Add(DefaultLease)}
	if !equalRecord(c.Record, want) {
		t.Fatalf("claim = %+v, want %+v", c.Record, want)
	}
	got, err := a.Lookup(t.Context(), "cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecord(got, want) {
		t.Fatalf("stored = %+v, want %+v", got, want)
	}
}

func TestCompleteThenClaimIsDuplicate(t *testing.T) {
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	c := mustClaim(t, a, "cmd-1", h1)
	attempt(c, e.clock.Now())
	attempt(c, e.clock.Now().Add(time.Second))
	c.Sequence = 7
	resp := json.RawMessage(`{"message":{"id":42}}`)
	before := time.Now()
	done, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 201, Response: resp})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	after := time.Now()

	for _, s := range []*KV{a, b} {
		_, err = s.Claim(t.Context(), "cmd-1", h1)
		var dup *DuplicateError
		if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicate) {
			t.Fatalf("Claim after Complete: err = %v, want *DuplicateError", err)
		}
		// The record keeps the response's digest, not the response (the
		// result has it), and its time is the server's.
		got := dup.Record
		if got.CompletedAt.Before(before.Add(-time.Second)) || got.CompletedAt.After(after.Add(time.Second)) {
			t.Fatalf("completed at %v, want the time it was stored (%v to %v)", got.CompletedAt, before, after)
		}
		got.CompletedAt = done.CompletedAt
		if !equalRecord(got, done) {
			t.Fatalf("duplicate record = %+v, want %+v", got, done)
		}
		if got.APIStatus != 201 || got.Digest != digestOf(t, resp) || got.Response != nil || got.Attempts != 2 || got.Sequence != 7 {
			t.Fatalf("duplicate lost the outcome: %+v", got)
		}
	}
}

func digestOf(t *testing.T, resp json.RawMessage) string {
	t.Helper()
	d, err := contract.ResponseDigest(resp)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSucceededRecordIsSmall holds the store's bytes per command under 300
// (JetStream's count: subject, stored header and value), with a typical
// response the record no longer keeps.
func TestSucceededRecordIsSmall(t *testing.T) {
	e := setup(t)
	a := e.open(t, "chat-worker-7d9f8b6c5-x2x4q/12345")
	const n = 200
	resp := json.RawMessage(`{"id":"msg_9f2c1d","timestamp":"2026-12-01T22:25:57.123Z","content":"Your order has shipped and will arrive on Tuesday.","from":"agent"}`)
	for i := range n {
		c := mustClaim(t, a, fmt.Sprintf("bench-%d", 100000+i), h1)
		attempt(c, time.Now())
		c.Sequence = uint64(1_000_000 + i)
		if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200, Response: resp}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.js.Stream(t.Context(), "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	per := info.State.Bytes / n
	t.Logf("%d bytes per succeeded command", per)
	if per > 300 {
		m, _ := st.GetLastMsgForSubject(t.Context(), "$KV."+DefaultBucket+".>")
		t.Fatalf("%d bytes per succeeded command, want at most 300; the last record: %s", per, m.Data)
	}
}

// TestKeepResponse: a success whose result could not be stored keeps its
// response in the record, for the redelivery to publish.
func TestKeepResponse(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)
	if err := a.KeepResponse(t.Context(), c, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`1`)}); err == nil {
		t.Fatal("KeepResponse on a claim not completed succeeded")
	}
	resp := json.RawMessage(`{"message":{"id":42}}`)
	out := contract.Outcome{APIStatus: 201, Response: resp}
	if _, err := a.Complete(t.Context(), c, out); err != nil {
		t.Fatal(err)
	}
	if err := a.KeepResponse(t.Context(), c, out); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Lookup(t.Context(), "cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != StateSucceeded || !bytes.Equal(rec.Response, resp) || rec.Digest != digestOf(t, resp) || rec.ID != "cmd-1" {
		t.Fatalf("record after KeepResponse: %+v", rec)
	}
}

// TestReadsRecordsOfEarlierVersions: records written before 1.2 kept the
// id, the completion time and the whole response; they still answer.
func TestReadsRecordsOfEarlierVersions(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	old := `{"id":"cmd-1","hash":"` + h1 + `","state":"succeeded","owner":"x/1","attempts":1,"first_attempt_at":"2026-01-02T03:04:05Z","last_attempt_at":"2026-01-02T03:04:05Z","api_status":200,"response":{"ok":true},"completed_at":"2026-01-02T03:04:06Z","sequence":9}`
	kv, err := e.js.KeyValue(t.Context(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), keyFor("cmd-1"), []byte(old)); err != nil {
		t.Fatal(err)
	}
	_, err = a.Claim(t.Context(), "cmd-1", h1)
	var dup *DuplicateError
	if !errors.As(err, &dup) {
		t.Fatalf("Claim: %v, want a duplicate", err)
	}
	want := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	if r := dup.Record; string(r.Response) != `{"ok":true}` || !r.CompletedAt.Equal(want) || r.Sequence != 9 || r.ID != "cmd-1" {
		t.Fatalf("old record read as %+v", r)
	}
}

func TestClaimConflict(t *testing.T) {
	tests := []struct {
		name  string
		state func(t *testing.T, s *KV, c *Claim)
	}{
		{"pending", func(*testing.T, *KV, *Claim) {}},
		{"released", func(t *testing.T, s *KV, c *Claim) {
			if err := s.Release(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}},
		{"succeeded", func(t *testing.T, s *KV, c *Claim) {
			if _, err := s.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "conflict-" + tt.name
			tt.state(t, a, mustClaim(t, a, id, h1))
			_, err := b.Claim(t.Context(), id, h2)
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("Claim with another hash: err = %v, want ErrConflict", err)
			}
		})
	}
}

func TestClaimBusyWhileLeaseLive(t *testing.T) {
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	mustClaim(t, a, "cmd-1", h1)
	e.clock.Add(20 * time.Second)

	// The same owner is busy too: an owner names a process, which may be
	// handling the id in another goroutine.
	for _, s := range []*KV{b, a} {
		_, err := s.Claim(t.Context(), "cmd-1", h1)
		var busy *BusyError
		if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) {
			t.Fatalf("%s: err = %v, want *BusyError", s.owner, err)
		}
		if want := DefaultLease - 20*time.Second; busy.RetryIn != want {
			t.Fatalf("%s: RetryIn = %s, want %s", s.owner, busy.RetryIn, want)
		}
	}
}

func TestExpiredLeaseTakeover(t *testing.T) {
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	ca := mustClaim(t, a, "cmd-1", h1)
	attempt(ca, e.clock.Now())
	if err := a.Extend(t.Context(), ca); err != nil { // saves the attempt
		t.Fatal(err)
	}
	first := ca.FirstAttemptAt
	e.clock.Add(DefaultLease) // a "dies"; its lease runs out

	cb := mustClaim(t, b, "cmd-1", h1)
	if cb.Owner != "b/1" || cb.Attempts != 1 || !cb.FirstAttemptAt.Equal(first) || cb.Abandoned != 1 {
		t.Fatalf("takeover = %+v, want owner b/1 with a's attempt, abandoned once", cb.Record)
	}
	if want := e.clock.Now().Add(DefaultLease); !cb.LeaseExpires.Equal(want) {
		t.Fatalf("LeaseExpires = %s, want %s", cb.LeaseExpires, want)
	}

	// a comes back: every write of its stale claim is refused.
	stale := map[string]func() error{
		"Complete": func() error { _, err := a.Complete(t.Context(), ca, contract.Outcome{APIStatus: 200}); return err },
		"Release":  func() error { return a.Release(t.Context(), ca) },
		"Extend":   func() error { return a.Extend(t.Context(), ca) },
	}
	for name, f := range stale {
		if err := f(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("%s of taken-over claim: err = %v, want ErrLeaseLost", name, err)
		}
	}
	attempt(cb, e.clock.Now())
	cb.Sequence = 7 // the command message that succeeded
	rec, err := b.Complete(t.Context(), cb, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("Complete by new owner: %v", err)
	}
	if rec.Attempts != 2 || rec.State != StateSucceeded || rec.Sequence != 7 {
		t.Fatalf("completed = %+v, want 2 attempts, succeeded, from message 7", rec)
	}
}

func TestReleaseKeepsAttempts(t *testing.T) {
	e := setup(t)
	a, b := e.open(t, "a/1"), e.open(t, "b/1")
	c := mustClaim(t, a, "cmd-1", h1)
	attempt(c, e.clock.Now())
	first := c.FirstAttemptAt
	if err := a.Release(t.Context(), c); err != nil {
		t.Fatalf("Release: %v", err)
	}
	got, err := a.Lookup(t.Context(), "cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StatePending || got.Owner != "" || !got.LeaseExpires.IsZero() || got.Attempts != 1 {
		t.Fatalf("released = %+v, want pending, no lease, 1 attempt", got)
	}

	// Anyone may claim a released id at once; the history carries on.
	for i, s := range []*KV{b, a} {
		e.clock.Add(time.Second)
		c := mustClaim(t, s, "cmd-1", h1)
		if c.Attempts != 1+i || !c.FirstAttemptAt.Equal(first) {
			t.Fatalf("reclaim %d = %+v, want %d attempts since %s", i, c.Record, 1+i, first)
		}
		if c.Abandoned != 0 {
			t.Fatalf("reclaim %d = %+v: a released claim counted as abandoned", i, c.Record)
		}
		attempt(c, e.clock.Now())
		if err := s.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClaimUseAfterDone(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Complete: err = %v, want ErrLeaseLost", err)
	}
	if err := a.Release(t.Context(), c); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Release after Complete: err = %v, want ErrLeaseLost", err)
	}
	if err := a.Release(t.Context(), nil); err == nil {
		t.Fatal("Release(nil) succeeded")
	}
	if _, err := a.Complete(t.Context(), &Claim{}, contract.Outcome{}); err == nil {
		t.Fatal("Complete of a made-up claim succeeded")
	}
}

func TestCompleteRejectsInvalidResponse(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`{not json`)}); err == nil {
		t.Fatal("Complete stored invalid JSON")
	}
	// The claim is still good.
	if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200, Response: json.RawMessage(`"ok"`)}); err != nil {
		t.Fatal(err)
	}
}

func TestClaimRace(t *testing.T) {
	const racers = 50
	tests := []struct {
		name    string
		prepare func(t *testing.T, e *env, s *KV)
	}{
		{"fresh id", func(*testing.T, *env, *KV) {}},
		{"expired lease", func(t *testing.T, e *env, s *KV) {
			mustClaim(t, s, "race", h1)
			e.clock.Add(DefaultLease + time.Second)
		}},
		{"released", func(t *testing.T, e *env, s *KV) {
			if err := s.Release(t.Context(), mustClaim(t, s, "race", h1)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			tt.prepare(t, e, e.open(t, "setup/1"))
			stores := make([]*KV, racers)
			for i := range stores {
				stores[i] = e.open(t, fmt.Sprintf("racer/%d", i))
			}
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				winners []string
				other   []error
			)
			start := make(chan struct{})
			for _, s := range stores {
				wg.Go(func() {
					<-start
					c, err := s.Claim(t.Context(), "race", h1)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						winners = append(winners, c.Owner)
					case !errors.Is(err, ErrBusy):
						other = append(other, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if len(winners) != 1 || len(other) != 0 {
				t.Fatalf("winners = %v, unexpected errors = %v; want one winner, the rest busy", winners, other)
			}
			got, err := stores[0].Lookup(t.Context(), "race")
			if err != nil {
				t.Fatal(err)
			}
			if got.Owner != winners[0] {
				t.Fatalf("stored owner = %q, winner = %q", got.Owner, winners[0])
			}
		})
	}
}

func TestOpenUpdatesExistingBucket(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	a, err := Open(ctx, e.js, Config{TTL: time.Hour, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := mustClaim(t, a, "keep-me", h1)
	if _, err := a.Complete(ctx, c, contract.Outcome{APIStatus: 200}); err != nil {
		t.Fatal(err)
	}

	b, err := Open(ctx, e.js, Config{TTL: 48 * time.Hour, Now: e.clock.Now})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	st, err := b.kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 48*time.Hour {
		t.Fatalf("bucket TTL = %s, want 48h", st.TTL())
	}
	if _, err := b.Claim(ctx, "keep-me", h1); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("record lost across Open: err = %v", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bucket name", Config{Bucket: "chat.idem"}, "invalid bucket name"},
		{"negative TTL", Config{TTL: -time.Second}, "TTL must be positive"},
		{"negative lease", Config{Lease: -time.Second}, "lease must be positive"},
		{"TTL within lease", Config{TTL: time.Minute, Lease: time.Minute}, "must be longer than the lease"},
		{"replicas", Config{Replicas: 7}, "replicas must be 1 to 5"},
		{"storage", Config{Storage: jetstream.StorageType(9)}, "unknown storage type"},
		{"change storage", Config{Bucket: "MEM", Storage: jetstream.FileStorage}, `bucket "MEM"`},
	}
	if _, err := Open(t.Context(), e.js, Config{Bucket: "MEM", Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(t.Context(), e.js, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%+v): err = %v, want it to mention %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	valid := []string{"a/b", "ü", strings.Repeat("x", MaxIDLen), "a.b", "*", ">", " spaced ", "\x00\x7f", "-_="}
	for _, id := range valid {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			c := mustClaim(t, a, id, h1)
			if _, err := a.Complete(t.Context(), c, contract.Outcome{APIStatus: 200}); err != nil {
				t.Fatal(err)
			}
			got, err := a.Lookup(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != id {
				t.Fatalf("Lookup ID = %q, want %q", got.ID, id)
			}
		})
	}
	invalid := map[string]string{
		"":                              "1 to 128 bytes",
		strings.Repeat("x", MaxIDLen+1): "1 to 128 bytes",
		"\xff":                          "not valid UTF-8",
	}
	for id, want := range invalid {
		if _, err := a.Claim(t.Context(), id, h1); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Claim(%q): err = %v, want it to mention %q", id, err, want)
		}
	}
}

func TestLookupNotFound(t *testing.T) {
	e := setup(t)
	_, err := e.open(t, "a/1").Lookup(t.Context(), "nope")
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("err = %v, want ErrNotFound wrapping jetstream.ErrKeyNotFound", err)
	}
}

// An operator may delete a key by hand, leaving a delete marker; the id is
// then fresh again.
func TestClaimAfterKeyDeleted(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	if _, err := a.Complete(t.Context(), mustClaim(t, a, "cmd-1", h1), contract.Outcome{APIStatus: 200}); err != nil {
		t.Fatal(err)
	}
	if err := a.kv.Delete(t.Context(), keyFor("cmd-1")); err != nil {
		t.Fatal(err)
	}
	c := mustClaim(t, a, "cmd-1", h2)
	if c.Hash != h2 || c.Attempts != 0 {
		t.Fatalf("claim after delete = %+v, want a fresh record", c.Record)
	}
}

// Attempts and the lease survive NATS going away under a worker.
func TestSurvivesServerRestart(t *testing.T) {
	e := setup(t)
	a := e.open(t, "a/1")
	c := mustClaim(t, a, "cmd-1", h1)
	attempt(c, e.clock.Now())
	if err := a.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	natstest.RestartServer(t, e.srv)

	// The client reconnects in the background; the first call may still fail.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := a.Claim(t.Context(), "cmd-1", h1)
		if err == nil {
			if c.Attempts != 1 {
				t.Fatalf("after restart Attempts = %d, want 1", c.Attempts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim after restart: %v", err)
		}
		runtime.Gosched()
	}
}

func TestHash(t *testing.T) {
	if got, want := Hash([]byte("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("Hash(abc) = %s, want %s", got, want)
	}
}

// equalRecord compares records, times by instant (JSON drops the location).
func equalRecord(a, b Record) bool {
	times := func(r Record) []time.Time {
		return []time.Time{r.LeaseExpires, r.FirstAttemptAt, r.LastAttemptAt, r.CompletedAt}
	}
	ta, tb := times(a), times(b)
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	return a.ID == b.ID && a.Hash == b.Hash && a.State == b.State && a.Owner == b.Owner &&
		a.Attempts == b.Attempts && a.APIStatus == b.APIStatus && bytes.Equal(a.Response, b.Response)
}

func BenchmarkClaimComplete(b *testing.B) {
	e := setup(b)
	s := e.open(b, "bench/1")
	ctx := context.Background()
	out := contract.Outcome{APIStatus: 200, Response: json.RawMessage(`{"ok":true}`)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c, err := s.Claim(ctx, fmt.Sprintf("bench-%d", i), h1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Complete(ctx, c, out); err != nil {
			b.Fatal(err)
		}
	}
}
