package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/identity"
)

// Defaults for Config.
const (
	DefaultBucket = contract.DefaultIdempotencyBucket
	DefaultTTL    = 24 * time.Hour
	DefaultLease  = 60 * time.Second
)

// MaxIDLen is the longest command id accepted, in bytes: the command's own
// limit.
const MaxIDLen = contract.MaxIDBytes

// maxRounds bounds how often Claim re-reads a record that keeps changing under
// it. Each lost round means another worker wrote the record, so running out is
// reported as busy.
const maxRounds = 5

// Config configures the bucket and the leases. The zero value is usable.
type Config struct {
	Bucket string // default DefaultBucket
	// TTL is how long a record is kept after its last write (the bucket's
	// MaxAge): a success is remembered that long, and a failed id left alone
	// that long starts again from zero attempts. Default 24h.
	TTL      time.Duration
	Lease    time.Duration         // how long a claim is exclusive unless extended; default 60s
	Replicas int                   // bucket replicas, 1..5; default 1
	Owner    string                // written on claims, for people reading records; default "host/pid"
	Storage  jetstream.StorageType // default FileStorage
	// Now is the clock used for leases and record times; default time.Now.
	// Leases compare times written by different workers, so their clocks must
	// agree to well within Lease.
	Now func() time.Time
}

var bucketRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// withDefaults fills in defaults and rejects settings that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if !bucketRE.MatchString(c.Bucket) {
		return c, fmt.Errorf("idempotency: invalid bucket name %q: use letters, digits, '-' and '_'", c.Bucket)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	switch {
	case c.TTL < 0:
		return c, fmt.Errorf("idempotency: TTL must be positive, got %s", c.TTL)
	case c.Lease < 0:
		return c, fmt.Errorf("idempotency: lease must be positive, got %s", c.Lease)
	case c.TTL <= c.Lease:
		// A pending record would expire while its lease is live, and with it the
		// attempt count and the guard against running in parallel.
		return c, fmt.Errorf("idempotency: TTL (%s) must be longer than the lease (%s)", c.TTL, c.Lease)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return c, fmt.Errorf("idempotency: replicas must be 1 to 5, got %d", c.Replicas)
	}
	if c.Storage != jetstream.FileStorage && c.Storage != jetstream.MemoryStorage {
		return c, fmt.Errorf("idempotency: unknown storage type %d", c.Storage)
	}
	if c.Owner == "" {
		c.Owner = identity.Name()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// KV is the Store backed by a JetStream key-value bucket. Records are JSON
// values under the base64url encoding of the command id. It is safe for
// concurrent use.
type KV struct {
	kv    jetstream.KeyValue
	owner string
	lease time.Duration
	now   func() time.Time
}

var _ Store = (*KV)(nil)

// Open creates the bucket, or updates the settings of an existing one (its
// records are kept; a shorter TTL does expire older records), and returns the
// store.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*KV, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "chat worker idempotency keys: one record per command id",
		History:     1, // only the latest record matters
		TTL:         cfg.TTL,
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency: create or update bucket %q: %w", cfg.Bucket, err)
	}
	return &KV{kv: kv, owner: cfg.Owner, lease: cfg.Lease, now: cfg.Now}, nil
}

// Lease is how long a claim is exclusive unless extended: the consumer
// checks that it renews claims often enough.
func (s *KV) Lease() time.Duration { return s.lease }

// Claim implements Store.
//
// A fresh id costs one round trip (a create). An existing id costs a create
// that fails and a read, plus an update when an expired or released lease is
// taken over.
func (s *KV) Claim(ctx context.Context, id, hash string) (*Claim, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if hash == "" {
		return nil, errors.New("idempotency: empty body hash")
	}
	key := keyFor(id)
	create, marker := true, false
	for range maxRounds {
		now := s.now().UTC()
		if create {
			rec := Record{ID: id, Hash: hash, State: StatePending, Owner: s.owner, LeaseExpires: now.Add(s.lease)}
			c, err := s.create(ctx, key, rec, marker)
			if !errors.Is(err, errExists) {
				return c, err
			}
		}
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			create, marker = true, true // deleted or expired since: create again
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: read %q: %w", id, err)
		}
		create = false
		rec, err := decode(e)
		if err != nil {
			return nil, err
		}
		switch {
		case rec.Hash != hash:
			return nil, fmt.Errorf("%w (id %q)", ErrConflict, id)
		case rec.State == StateSucceeded:
			return nil, &DuplicateError{Record: rec}
		case rec.State != StatePending:
			return nil, fmt.Errorf("idempotency: record %q has unknown state %q", id, rec.State)
		case now.Before(rec.LeaseExpires):
			// Live, whoever owns it: the owner string names a process, and the
			// same process may hold this id in another goroutine.
			return nil, &BusyError{RetryIn: rec.LeaseExpires.Sub(now)}
		}
		// Released after a failure, or its worker died: take it over, keeping
		// the attempt history. The revision check makes one racer win. An
		// owner still named means its lease ran out without an outcome.
		if rec.Owner != "" {
			rec.Abandoned++
		}
		rec.Owner = s.owner
		rec.LeaseExpires = now.Add(s.lease)
		c := &Claim{Record: rec, key: key, revision: e.Revision()}
		err = s.update(ctx, c, rec)
		if errors.Is(err, ErrLeaseLost) {
			continue // another worker wrote first: look again
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, &BusyError{RetryIn: time.Second} // the record kept changing: others are at work
}

// Tentative implements Store: no round trip.
func (s *KV) Tentative(id, hash string) (*Claim, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if hash == "" {
		return nil, errors.New("idempotency: empty body hash")
	}
	rec := Record{ID: id, Hash: hash, State: StatePending, Owner: s.owner}
	return &Claim{Record: rec, key: keyFor(id), tentative: true}, nil
}

// errExists: create found a value under the key.
var errExists = errors.New("idempotency: key exists")

// create writes rec if key has no value, or returns errExists. Normally it is
// Update at revision 0, which JetStream treats as "no message on this subject":
// one round trip, where Create spends a second one on a failure to look for a
// delete marker. When the caller saw that key is deleted but still has a
// marker (someone removed it by hand), it asks for Create, which handles that.
func (s *KV) create(ctx context.Context, key string, rec Record, marker bool) (*Claim, error) {
	data, err := encode(rec)
	if err != nil {
		return nil, err
	}
	var rev uint64
	if marker {
		rev, err = s.kv.Create(ctx, key, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, errExists
		}
	} else {
		rev, err = s.kv.Update(ctx, key, data, 0)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, errExists
		}
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency: create %q: %w", rec.ID, err)
	}
	return &Claim{Record: rec, key: key, revision: rev}, nil
}

// Complete implements Store in one round trip. The succeeded record keeps
// only what a later delivery of the id needs (see Record).
func (s *KV) Complete(ctx context.Context, c *Claim, out contract.Outcome) (Record, error) {
	if err := usable(c); err != nil {
		return Record{}, err
	}
	digest, err := contract.ResponseDigest(out.Response) // also checks that it is JSON
	if err != nil {
		return Record{}, fmt.Errorf("idempotency: record %q: %w", c.ID, err)
	}
	rec := Record{
		ID: c.ID, Hash: c.Hash, State: StateSucceeded, Attempts: c.Attempts,
		APIStatus: out.APIStatus, Digest: digest, Sequence: c.Sequence,
	}
	if err := s.update(ctx, c, rec); err != nil {
		return Record{}, err
	}
	c.done = true
	c.Record.CompletedAt = s.now().UTC()
	return c.Record, nil
}

// KeepResponse implements Store in one round trip.
func (s *KV) KeepResponse(ctx context.Context, c *Claim, out contract.Outcome) error {
	switch {
	case c == nil || c.key == "":
		return errors.New("idempotency: claim was not returned by Claim")
	case !c.done || c.State != StateSucceeded:
		return fmt.Errorf("idempotency: claim %q is not completed", c.ID)
	}
	rec := c.Record
	rec.Response = out.Response
	return s.update(ctx, c, rec)
}

// Release implements Store in one round trip.
func (s *KV) Release(ctx context.Context, c *Claim) error {
	if err := usable(c); err != nil {
		return err
	}
	if c.tentative && c.Attempts == 0 {
		// Nothing stored, nothing to keep: the id stays free.
		c.done = true
		return nil
	}
	rec := c.Record
	rec.Owner = ""
	rec.LeaseExpires = time.Time{}
	if err := s.update(ctx, c, rec); err != nil {
		return err
	}
	c.done = true
	return nil
}

// Extend implements Store in one round trip.
func (s *KV) Extend(ctx context.Context, c *Claim) error {
	if err := usable(c); err != nil {
		return err
	}
	rec := c.Record
	rec.LeaseExpires = s.now().UTC().Add(s.lease)
	return s.update(ctx, c, rec)
}

// Lookup implements Store in one round trip.
func (s *KV) Lookup(ctx context.Context, id string) (Record, error) {
	if err := validID(id); err != nil {
		return Record{}, err
	}
	e, err := s.kv.Get(ctx, keyFor(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, fmt.Errorf("%w %q: %w", ErrNotFound, id, err)
	}
	if err != nil {
		return Record{}, fmt.Errorf("idempotency: read %q: %w", id, err)
	}
	return decode(e)
}

// update writes rec over the revision c holds and, on success, makes rec and
// the new revision c's. After an error other than ErrLeaseLost the write may
// or may not have landed (a timeout, say); c is left as it was, so a later
// write fails with ErrLeaseLost rather than overwrite anything. A tentative
// claim's write creates the record: any value under the key, a live
// claim, a released one or an outcome, means another delivery has the id.
func (s *KV) update(ctx context.Context, c *Claim, rec Record) error {
	data, err := encode(rec)
	if err != nil {
		return err
	}
	var rev uint64
	if c.tentative {
		// Create, not Update at revision 0: a key deleted by hand keeps a
		// marker, which Create writes over and Update would take for a value.
		rev, err = s.kv.Create(ctx, c.key, data)
	} else {
		rev, err = s.kv.Update(ctx, c.key, data, c.revision)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w (id %q)", ErrLeaseLost, rec.ID)
	}
	if err != nil {
		return fmt.Errorf("idempotency: write %q: %w", rec.ID, err)
	}
	c.Record = rec
	c.revision = rev
	c.tentative = false
	return nil
}

func usable(c *Claim) error {
	switch {
	case c == nil || c.key == "":
		return errors.New("idempotency: claim was not returned by Claim")
	case c.done:
		return fmt.Errorf("%w: claim %q was already completed or released", ErrLeaseLost, c.ID)
	}
	return nil
}

func validID(id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("idempotency: id must be 1 to %d bytes, got %d", MaxIDLen, len(id))
	}
	if !utf8.ValidString(id) {
		// Command ids come from JSON; JSON would also mangle it in the record.
		return fmt.Errorf("idempotency: id %q is not valid UTF-8", id)
	}
	return nil
}

// keyFor maps any id to a valid KV key ([-_a-zA-Z0-9]), one to one.
func keyFor(id string) string { return contract.IdempotencyKey(id) }

func encode(rec Record) ([]byte, error) {
	rec.CompletedAt = time.Time{} // the server's timestamp of the record says it
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("idempotency: encode record %q: %w", rec.ID, err)
	}
	return data, nil
}

func decode(e jetstream.KeyValueEntry) (Record, error) {
	rec, err := contract.ReadIdempotencyRecord(e.Key(), e.Value(), e.Created())
	if err != nil {
		return Record{}, fmt.Errorf("idempotency: decode record %s: %w", e.Key(), err)
	}
	return rec, nil
}
