package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/chatworker/worker/contract"
)

// State is contract.RecordState.
type State = contract.RecordState

// The states of a record (see contract.RecordState).
const (
	StatePending   = contract.RecordPending
	StateSucceeded = contract.RecordSucceeded
)

// Record is contract.IdempotencyRecord: the stored value for one command
// id, declared beside the results, which apps read too.
type Record = contract.IdempotencyRecord

// Claim is a held lease on an id. The caller updates Attempts, FirstAttemptAt
// and LastAttemptAt as it calls the API; Complete, Release and Extend write
// them back. A Claim is used by one goroutine at a time.
type Claim struct {
	Record

	key      string // the KV key of the id
	revision uint64 // the revision we wrote last; every write is checked against it
	done     bool   // completed or released: no further writes
	// tentative: nothing is stored yet (Tentative). The first write creates
	// the record and fails with ErrLeaseLost when the id has one.
	tentative bool
}

// Stored reports whether the claim's record is in the store: false for a
// claim from Tentative until its first write lands.
func (c *Claim) Stored() bool { return !c.tentative }

// Store is the worker's idempotency key store. *KV is the NATS implementation
// and *Fake a stand-in for unit tests.
type Store interface {
	// Claim takes the lease on id for a command whose body hashes to hash.
	// It returns a *DuplicateError (ErrDuplicate) when id already succeeded
	// with that hash, ErrConflict when id was used with another hash, and a
	// *BusyError (ErrBusy) while another claim's lease is live.
	Claim(ctx context.Context, id, hash string) (*Claim, error)
	// Tentative returns a claim on id that is not stored, without a round
	// trip: for a caller that knows no other delivery of the command runs
	// meanwhile (see the consumer's first deliveries). Its first write
	// (Complete, Extend, or Release with attempts to keep) creates the
	// record, and fails with ErrLeaseLost when the id has one by then: then
	// another delivery took the id, and this one must report nothing.
	// Release of a tentative claim that made no attempt writes nothing.
	Tentative(id, hash string) (*Claim, error)
	// Complete records a success as final and returns the stored record. The
	// record keeps the response's digest, not the response: the result
	// carries that. ErrLeaseLost means the claim was taken over: do not
	// report success twice.
	Complete(ctx context.Context, c *Claim, out contract.Outcome) (Record, error)
	// KeepResponse adds the response to a completed claim's record, for
	// when its result could not be stored: the redelivery publishes the
	// result from the record.
	KeepResponse(ctx context.Context, c *Claim, out contract.Outcome) error
	// Release drops the lease after a failure, keeping attempt counts and
	// times, so a later delivery can claim the id again at once.
	Release(ctx context.Context, c *Claim) error
	// Extend renews the lease (and saves the attempt fields) during a long call.
	Extend(ctx context.Context, c *Claim) error
	// Lookup returns the record of id, or an error wrapping ErrNotFound.
	Lookup(ctx context.Context, id string) (Record, error)
}

// Hash returns the hex SHA-256 of body. Callers hash a canonical encoding of
// the command, so the same command always has the same hash.
func Hash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
