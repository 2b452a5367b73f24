package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"

	"github.com/chatworker/worker/actions"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// records builds the records the worker publishes about a command, its
// result and its dead letter, for every path (the rescuer included), and
// finds the original result of a command that succeeded before
// (original.go).
type records struct {
	js   jetstream.JetStream
	topo Topology
	name string // the worker's, in dead letters
	now  func() time.Time
}

func (rs *records) result(d *delivery, status string, attempts int, out contract.Outcome) *actions.Result {
	resp := out.Response
	if len(resp) == 0 {
		resp = json.RawMessage("null")
	}
	return &actions.Result{
		ID: d.cmd.ID, Type: d.cmd.Type, ChatID: d.cmd.ChatID, Status: status, Attempts: attempts,
		APIStatus: out.APIStatus, Response: resp, CompletedAt: rs.now().UTC(), Metadata: d.cmd.Metadata,
		Traceparent: d.traceparent, Project: d.cmd.Project,
	}
}

// resultStatus is the status of the result for the command message at seq
// whose id had already succeeded: the message that succeeded gets its
// succeeded result again (its first publish may have failed); any other, or
// any when the record does not say which message it was, is a duplicate.
func resultStatus(rec idempotency.Record, seq uint64) string {
	if rec.Sequence != 0 && rec.Sequence == seq {
		return contract.StatusSucceeded
	}
	return contract.StatusDuplicate
}

// deadLetter builds the dead letter of class for the command in d. rec, when
// known, carries the attempts made; err says why.
func (rs *records) deadLetter(d *delivery, rec *idempotency.Record, class actions.Class, err error) *actions.DeadLetter {
	dl := &actions.DeadLetter{
		Subject:     d.subject,
		Headers:     deadLetterHeaders(d.headers),
		Error:       actions.ErrorInfo{Class: class, Message: err.Error()},
		Worker:      rs.name,
		Stream:      d.meta.Stream,
		Sequence:    d.meta.Sequence.Stream,
		DeadAt:      rs.now().UTC(),
		Traceparent: d.traceparent,
	}
	var apiErr *chat.APIError
	if errors.As(err, &apiErr) {
		dl.Error.APIStatus, dl.Error.APICode = apiErr.StatusCode, apiErr.Code
	}
	dl.Command, dl.Raw = deadLetterBody(d.data)
	// The subject names the project even when the body cannot be read.
	dl.Project = d.cmd.Project
	if r, err := rs.topo.Subjects.ParseCommand(d.subject); err == nil {
		dl.Project = r.Project
	}
	if rec != nil {
		dl.Attempts = rec.Attempts
		if !rec.FirstAttemptAt.IsZero() {
			first, last := rec.FirstAttemptAt.UTC(), rec.LastAttemptAt.UTC()
			dl.FirstAttemptAt, dl.LastAttemptAt = &first, &last
		}
	}
	return dl
}

// deadLetterBody decides how a dead letter keeps its command message's body,
// so that the exact bytes can always be recovered (DeadLetter.Body):
//
//   - command: the body, when it is a UTF-8 JSON object within
//     contract.MaxMessageBytes, so the record is readable as JSON;
//   - raw: the exact bytes whenever there is no command, or whenever the
//     command would not reproduce them byte for byte (encoding/json compacts
//     a json.RawMessage and escapes <, > and & when the record is encoded).
func deadLetterBody(data []byte) (command json.RawMessage, raw []byte) {
	if len(data) <= contract.MaxMessageBytes && utf8.Valid(data) && isJSONObject(data) {
		command = data
		if enc, err := json.Marshal(command); err == nil && bytes.Equal(enc, data) {
			return command, nil
		}
	}
	return command, data
}

// deadLetterHeaders keeps the original headers when they are within the
// limits; headers over them are the reason for the dead letter, and copying
// them would let a publisher make dead letters as large as it likes.
func deadLetterHeaders(h nats.Header) nats.Header {
	if contract.CheckHeaders(h) != nil {
		return nil
	}
	return h
}

// MaxCommandMsgSize is the largest command message (headers and body) the
// commands stream accepts: 4 × contract.MaxMessageBytes, so an oversized
// command still arrives and is dead-lettered with a reason, while any
// message that arrives has a dead letter that fits NATS's default 1 MiB
// payload (its body kept as base64, possibly beside the JSON command).
// Larger publishes are refused by JetStream before the worker sees them.
const MaxCommandMsgSize = 4 * contract.MaxMessageBytes

func isJSONObject(data []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(data, &obj) == nil && obj != nil
}
