package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/chatworker/worker/actions"
	"github.com/nats-io/nats.go"
)

// The dead letters' lines: the demo's, --wait's, worker status's and dlq
// ls's say the same things the same way, so that a line is enough to tell
// which command died and why without a dlq show.

// deadLetterID is the id of the command a dead letter holds: the command's
// own, or for a command that could not be read, the Nats-Msg-Id it was
// published with.
func deadLetterID(dl *actions.DeadLetter) string {
	var c struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(dl.Command, &c) == nil && c.ID != "" {
		return c.ID
	}
	if ids := dl.Headers[nats.MsgIdHdr]; len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// deadLetterFields are a dead letter's facts as key=value pairs: id, class,
// attempts and, for an API refusal, its status and code.
func deadLetterFields(dl *actions.DeadLetter) string {
	s := fmt.Sprintf("id=%s  class=%s  attempts=%d", dashIfEmpty(printable(deadLetterID(dl))), dl.Error.Class, dl.Attempts)
	if dl.Error.APIStatus != 0 {
		s += fmt.Sprintf("  api_status=%d", dl.Error.APIStatus)
	}
	if dl.Error.APICode != 0 {
		s += fmt.Sprintf("  api_code=%d", dl.Error.APICode)
	}
	return s
}

// deadLetterCause is the part of a dead letter's message that says why:
// for an API refusal, the status and what the API said, without the
// request that precedes them; otherwise the whole message, on one line.
func deadLetterCause(e actions.ErrorInfo) string {
	msg := oneLine(e.Message)
	if e.APIStatus == 0 {
		return msg
	}
	status := fmt.Sprintf("%d %s", e.APIStatus, http.StatusText(e.APIStatus))
	if i := strings.Index(msg, status); i >= 0 {
		return msg[i:]
	}
	return fmt.Sprintf("%d: %s", e.APIStatus, msg)
}
