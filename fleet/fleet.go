// Package fleet lets the worker replicas see each other. Each one writes a
// small record of itself (name, version, concurrency, commands in flight)
// into a NATS key-value bucket every few seconds and watches the others', so
// every replica knows how many are alive, to take its share of each
// project's rate budget, and operators can see who is connected.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// DefaultBucket is the key-value bucket of the replicas' records.
const DefaultBucket = "CHAT_WORKERS"

// DefaultHeartbeat is how often a replica writes its record. A replica
// whose record is older than three heartbeats is gone: the others take its
// share within about that long. At 2 s a killed replica's share went unused
// for 6 s (a third of a project's budget lost for that long with three
// replicas); at 1 s it is 3 s, for one small KV write a second per replica.
const DefaultHeartbeat = time.Second

// Member is one replica's record.
type Member struct {
	Name        string    `json:"name"` // host/pid
	Version     string    `json:"version"`
	Concurrency int       `json:"concurrency"`
	InFlight    int       `json:"in_flight"`
	Started     time.Time `json:"started"`
	// Seen is when the record was last written, by the server's clock.
	Seen time.Time `json:"seen"`
	// Budgets is this replica's view of each project's rate budget, by
	// project name: what the API last said, and what this replica spent in
	// the last minute (see BudgetUse).
	Budgets map[string]chat.Budget `json:"budgets,omitempty"`
}

// BudgetUse adds up the replicas' views of each project's budget: the units
// they all spent in the last minute, against the limit and remaining units
// the API told the replica whose record is newest.
func BudgetUse(members []Member) map[string]chat.Budget {
	out := map[string]chat.Budget{}
	newest := map[string]time.Time{}
	for _, m := range members {
		for p, b := range m.Budgets {
			sum := out[p]
			sum.Used += b.Used
			if b.Known && !m.Seen.Before(newest[p]) {
				sum.Known, sum.Limit, sum.Remaining = true, b.Limit, b.Remaining
				newest[p] = m.Seen
			}
			out[p] = sum
		}
	}
	return out
}

// Config says where the records live and how often they are written.
type Config struct {
	Bucket    string // DefaultBucket when empty
	Replicas  int    // 1 when zero
	Storage   jetstream.StorageType
	Heartbeat time.Duration // DefaultHeartbeat when zero
	// Budgets, if not nil, is asked at each heartbeat for this replica's
	// view of each project's rate budget (Member.Budgets).
	Budgets func() map[string]chat.Budget
}

func (c Config) withDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	return c
}

// Fleet is this replica's place among the others. Join starts it; Leave
// ends it.
type Fleet struct {
	kv       jetstream.KeyValue
	cfg      Config
	me       Member
	key      string
	inFlight func() int
	log      *zap.Logger
	now      func() time.Time

	mu     sync.Mutex
	seen   map[string]seenMember // by key, with when this replica last heard of it
	cancel context.CancelFunc
	done   chan struct{}
}

type seenMember struct {
	m  Member
	at time.Time // local time of the last write heard
}

// Join writes this replica's record, reads the others', and keeps both
// current until Leave. inFlight, if not nil, is asked at each heartbeat.
func Join(ctx context.Context, js jetstream.JetStream, cfg Config, me Member, inFlight func() int, log *zap.Logger) (*Fleet, error) {
	cfg = cfg.withDefaults()
	kv, err := open(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	if me.Started.IsZero() {
		me.Started = time.Now().UTC()
	}
	f := &Fleet{kv: kv, cfg: cfg, me: me, key: keyOf(me.Name), inFlight: inFlight, log: log, now: time.Now,
		seen: map[string]seenMember{}, done: make(chan struct{})}
	if err := f.beat(ctx); err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("fleet: watch replicas: %w", err)
	}
	// The stored records first, then a nil entry.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		f.apply(e, true)
	}
	var run context.Context
	run, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go f.loop(run, w)
	return f, nil
}

func open(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "chat worker replicas: one record each, written every few seconds",
		History:     1,
		TTL:         time.Minute, // a crashed replica's record goes by itself
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: create or update bucket %q: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// loop writes the record every heartbeat and follows the others'.
func (f *Fleet) loop(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(f.done)
	defer w.Stop()
	tick := time.NewTicker(f.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				f.apply(e, false)
			}
		case <-tick.C:
			bctx, cancel := context.WithTimeout(ctx, f.cfg.Heartbeat)
			if err := f.beat(bctx); err != nil && ctx.Err() == nil {
				f.log.Warn("fleet: could not write this replica's record; the others may take its share of the budgets", zap.Error(err))
			}
			cancel()
		}
	}
}

func (f *Fleet) beat(ctx context.Context) error {
	m := f.me
	if f.inFlight != nil {
		m.InFlight = f.inFlight()
	}
	if f.cfg.Budgets != nil {
		m.Budgets = f.cfg.Budgets()
	}
	m.Seen = time.Now().UTC()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := f.kv.Put(ctx, f.key, b); err != nil {
		return fmt.Errorf("fleet: write %s: %w", f.key, err)
	}
	return nil
}

// apply records one entry. An entry read at start is as old as the server
// says; one that arrives later was just written.
func (f *Fleet) apply(e jetstream.KeyValueEntry, stored bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(f.seen, e.Key())
		return
	}
	var m Member
	if json.Unmarshal(e.Value(), &m) != nil {
		return
	}
	at := f.now()
	if stored {
		at = e.Created()
	}
	f.seen[e.Key()] = seenMember{m: m, at: at}
}

// alive reports whether a record heard of at at is recent enough.
func (f *Fleet) alive(at time.Time) bool { return f.now().Sub(at) <= 3*f.cfg.Heartbeat }

// Live counts the live replicas, this one included.
func (f *Fleet) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 1
	for k, s := range f.seen {
		if k != f.key && f.alive(s.at) {
			n++
		}
	}
	return n
}

// Share is this replica's part of each project's rate budget: 1/Live.
func (f *Fleet) Share() float64 { return 1 / float64(f.Live()) }

// Members lists the live replicas, sorted by name.
func (f *Fleet) Members() []Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Member
	for _, s := range f.seen {
		if f.alive(s.at) {
			out = append(out, s.m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Leave stops the heartbeat and removes this replica's record, so the
// others take its share at once rather than after three heartbeats.
func (f *Fleet) Leave(ctx context.Context) {
	f.cancel()
	<-f.done
	if err := f.kv.Delete(ctx, f.key); err != nil && !errors.Is(err, context.Canceled) {
		f.log.Warn("fleet: could not remove this replica's record; the others notice in a few seconds", zap.Error(err))
	}
}

// List returns the live replicas from the bucket without joining, for the
// console and the command line. A record older than three default
// heartbeats (by the server's clock) is left out.
func List(ctx context.Context, js jetstream.JetStream, bucket string) ([]Member, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil // no replica has ever run
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: open bucket %q: %w", bucket, err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet: list replicas: %w", err)
	}
	var out []Member
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: read %s: %w", k, err)
		}
		var m Member
		if json.Unmarshal(e.Value(), &m) != nil || time.Since(e.Created()) > 3*DefaultHeartbeat {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// keyOf makes a replica's name a bucket key: characters a key cannot hold
// become _.
func keyOf(name string) string {
	return "w." + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}
