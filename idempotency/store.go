package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/chatworker/worker/actions"
)

// State is where a record is in its life.
type State string

const (
	// StatePending: claimed (Owner and LeaseExpires set) or released after a
	// failure (no owner), and may run again.
	StatePending State = "pending"
	// StateSucceeded: final; the outcome is stored and the id will not run again.
	StateSucceeded State = "succeeded"
)

// Record is the stored value for one command id, as JSON. A succeeded
// record is small (about 150 bytes of JSON): the hash, the attempts, the
// API's status, the command's stream sequence and a digest of the response.
// The response itself is in the result on the results stream; the record
// keeps it only when that result could not be stored (KeepResponse).
type Record struct {
	ID             string    `json:"-"` // the key holds it
	Hash           string    `json:"hash"`
	State          State     `json:"state"`
	Owner          string    `json:"owner,omitempty"`
	LeaseExpires   time.Time `json:"lease_expires,omitzero"`
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	APIStatus      int       `json:"api_status,omitempty"`
	// Response is the API's response when the record keeps it: records
	// written by versions before 1.2 do, and so does a success whose result
	// could not be stored. Otherwise the result on the results stream has
	// it, and Digest identifies it (actions.ResponseDigest).
	Response json.RawMessage `json:"response,omitempty"`
	Digest   string          `json:"digest,omitempty"`
	// CompletedAt is when the success was recorded: the time the server
	// stored the record (older versions wrote it in the record too).
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Sequence is the stream sequence of the command message that
	// succeeded (the caller sets it on the claim before Complete), so a
	// redelivery of that same message can publish its result as succeeded
	// (its first publish may have failed), while a later message with the
	// id is a duplicate. With the command's subject it also finds the
	// result: its Nats-Msg-Id is <id>:<Sequence>. 0 when unknown.
	Sequence uint64 `json:"sequence,omitempty"`
	// Abandoned counts the claims on this id whose lease ran out without an
	// outcome (completed or released): the worker holding it crashed or
	// stalled. A command that keeps killing its workers shows here, however
	// often it was delivered for other reasons (see the consumer's poison
	// backstop).
	Abandoned int `json:"abandoned,omitempty"`
}

// Claim is a held lease on an id. The caller updates Attempts, FirstAttemptAt
// and LastAttemptAt as it calls the API; Complete, Release and Extend write
// them back. A Claim is used by one goroutine at a time.
type Claim struct {
	Record

	key      string // the KV key of the id
	revision uint64 // the revision we wrote last; every write is checked against it
	done     bool   // completed or released: no further writes
}

// Store is the worker's idempotency key store. *KV is the NATS implementation
// and *Fake a stand-in for unit tests.
type Store interface {
	// Claim takes the lease on id for a command whose body hashes to hash.
	// It returns a *DuplicateError (ErrDuplicate) when id already succeeded
	// with that hash, ErrConflict when id was used with another hash, and a
	// *BusyError (ErrBusy) while another claim's lease is live.
	Claim(ctx context.Context, id, hash string) (*Claim, error)
	// Complete records a success as final and returns the stored record. The
	// record keeps the response's digest, not the response: the result
	// carries that. ErrLeaseLost means the claim was taken over: do not
	// report success twice.
	Complete(ctx context.Context, c *Claim, out actions.Outcome) (Record, error)
	// KeepResponse adds the response to a completed claim's record, for
	// when its result could not be stored: the redelivery publishes the
	// result from the record.
	KeepResponse(ctx context.Context, c *Claim, out actions.Outcome) error
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
