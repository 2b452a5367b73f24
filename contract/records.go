package contract

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Outcome is what the API answered to a command that succeeded.
type Outcome struct {
	APIStatus int
	Response  json.RawMessage // valid JSON when not empty
}

// Result is published on chat.results.<type>.<chat> for every command that
// succeeded (or had already succeeded).
type Result struct {
	ID          string          `json:"id"`
	Type        Type            `json:"type"`
	ChatID      string          `json:"chat_id"`
	Status      string          `json:"status"` // succeeded | duplicate
	Attempts    int             `json:"attempts"`
	APIStatus   int             `json:"api_status"`
	Response    json.RawMessage `json:"response"`
	CompletedAt time.Time       `json:"completed_at"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	// Traceparent is the W3C trace context the command carried, if any.
	Traceparent string `json:"traceparent,omitempty"`
	// ResponseDigest is set, and Response is null, on a duplicate whose
	// original result is no longer stored (the results stream was purged
	// or its retention is shorter than the idempotency records'): the
	// ResponseDigest of the original response, to compare with a copy
	// the app kept.
	ResponseDigest string `json:"response_digest,omitempty"`
	// Project is the project's name when the command came on a v2 subject
	// (contract v2); a v1 command's result has none.
	Project string `json:"project,omitempty"`
}

// ResponseDigest identifies a response without keeping it: the first 16
// characters of the unpadded base64url SHA-256 (96 bits) of the response
// as a result carries it (the JSON value of "response", compact; null for
// none). The idempotency record keeps it instead of the response. It fails
// when the response is not valid JSON.
func ResponseDigest(response json.RawMessage) (string, error) {
	if len(response) == 0 {
		response = json.RawMessage("null")
	}
	b, err := json.Marshal(response) // compacts it, as encoding a result does
	if err != nil {
		return "", fmt.Errorf("digest of the response: %w", err)
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16], nil
}

// Result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusDuplicate = "duplicate"
)

// DeadLetter is published on chat.dlq.<type>.<chat> for every command that
// cannot succeed. It carries everything needed to understand and replay it.
type DeadLetter struct {
	// Command is the command as received when it was a JSON object; Raw
	// holds the bytes otherwise.
	Command        json.RawMessage     `json:"command,omitempty"`
	Raw            []byte              `json:"raw,omitempty"`
	Subject        string              `json:"subject"`
	Headers        map[string][]string `json:"headers,omitempty"`
	Error          ErrorInfo           `json:"error"`
	Attempts       int                 `json:"attempts"`
	FirstAttemptAt *time.Time          `json:"first_attempt_at,omitempty"`
	LastAttemptAt  *time.Time          `json:"last_attempt_at,omitempty"`
	Worker         string              `json:"worker"`
	// Stream and Sequence locate the command message the dead letter came
	// from (extension: lets operators correlate with stream events).
	Stream   string `json:"stream,omitempty"`
	Sequence uint64 `json:"stream_seq,omitempty"`
	// DeadAt is when the worker gave up (extension).
	DeadAt      time.Time `json:"dead_at"`
	Traceparent string    `json:"traceparent,omitempty"`
	// Project is the project's name when the command came on a v2 subject
	// (contract v2), also when its body could not be read.
	Project string `json:"project,omitempty"`
}

// ErrorInfo says why a command is a dead letter. Message is written for a
// person and never holds credentials.
type ErrorInfo struct {
	Class     Class  `json:"class"`
	Message   string `json:"message"`
	APIStatus int    `json:"api_status,omitempty"`
	APICode   int    `json:"api_code,omitempty"`
}

// Body returns the command message's body exactly as it was received.
func (d *DeadLetter) Body() []byte {
	if d.Raw != nil {
		return d.Raw
	}
	return d.Command
}
