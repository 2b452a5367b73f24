package consumer

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/chatworker/worker/actions"
	"github.com/nats-io/nats.go"
)

// deadLetterBody decides how a dead letter keeps its command message's body,
// so that the exact bytes can always be recovered (DeadLetter.Body):
//
//   - command: the body, when it is a UTF-8 JSON object within
//     actions.MaxMessageBytes, so the record is readable as JSON;
//   - raw: the exact bytes whenever there is no command, or whenever the
//     command would not reproduce them byte for byte (encoding/json compacts
//     a json.RawMessage and escapes <, > and & when the record is encoded).
func deadLetterBody(data []byte) (command json.RawMessage, raw []byte) {
	if len(data) <= actions.MaxMessageBytes && utf8.Valid(data) && isJSONObject(data) {
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
	if actions.CheckHeaders(h) != nil {
		return nil
	}
	return h
}

// MaxCommandMsgSize is the largest command message (headers and body) the
// commands stream accepts: 4 × actions.MaxMessageBytes, so an oversized
// command still arrives and is dead-lettered with a reason, while any
// message that arrives has a dead letter that fits NATS's default 1 MiB
// payload (its body kept as base64, possibly beside the JSON command).
// Larger publishes are refused by JetStream before the worker sees them.
const MaxCommandMsgSize = 4 * actions.MaxMessageBytes
