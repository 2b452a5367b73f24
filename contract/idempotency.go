package contract

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// DefaultIdempotencyBucket is the key-value bucket where the worker keeps an
// IdempotencyRecord per command id.
const DefaultIdempotencyBucket = "CHAT_IDEMPOTENCY"

// RecordState is where an idempotency record is in its life.
type RecordState string

const (
	// RecordPending: claimed (Owner and LeaseExpires set) or released after
	// a failure (no owner), and may run again.
	RecordPending RecordState = "pending"
	// RecordSucceeded: final; the outcome is stored and the id will not run
	// again.
	RecordSucceeded RecordState = "succeeded"
)

// IdempotencyRecord is the value the worker stores for one command id, as
// JSON, under the key IdempotencyKey(id). The worker (package idempotency)
// writes it; apps read it to learn whether a command ran. A succeeded
// record is small (about 150 bytes of JSON): the hash, the attempts, the
// API's status, the command's stream sequence and a digest of the response.
// The response itself is in the result on the results stream; the record
// keeps it only when that result could not be stored.
type IdempotencyRecord struct {
	ID             string      `json:"-"` // the key holds it
	Hash           string      `json:"hash"`
	State          RecordState `json:"state"`
	Owner          string      `json:"owner,omitempty"`
	LeaseExpires   time.Time   `json:"lease_expires,omitzero"`
	Attempts       int         `json:"attempts"`
	FirstAttemptAt time.Time   `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time   `json:"last_attempt_at,omitzero"`
	APIStatus      int         `json:"api_status,omitempty"`
	// Response is the API's response when the record keeps it: records
	// written by versions before 1.2 do, and so does a success whose result
	// could not be stored. Otherwise the result on the results stream has
	// it, and Digest identifies it (ResponseDigest).
	Response json.RawMessage `json:"response,omitempty"`
	Digest   string          `json:"digest,omitempty"`
	// CompletedAt is when the success was recorded: the time the server
	// stored the record (older versions wrote it in the record too).
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Sequence is the stream sequence of the command message that
	// succeeded (the worker sets it on the claim before it completes), so a
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

// IdempotencyKey is the bucket key of id's record: its unpadded base64url
// encoding, so any id is a valid key.
func IdempotencyKey(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// IdempotencyID is the inverse of IdempotencyKey; ok is false for a key
// that is not one.
func IdempotencyID(key string) (id string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	return string(b), err == nil
}

// ReadIdempotencyRecord decodes the record stored under key with value,
// which the server stored at created: a succeeded record leaves its
// CompletedAt to that time.
func ReadIdempotencyRecord(key string, value []byte, created time.Time) (IdempotencyRecord, error) {
	var rec IdempotencyRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return IdempotencyRecord{}, err
	}
	if id, ok := IdempotencyID(key); ok {
		rec.ID = id
	}
	if rec.State == RecordSucceeded && rec.CompletedAt.IsZero() {
		rec.CompletedAt = created.UTC()
	}
	return rec, nil
}
