package consumer

import (
	"fmt"
	"time"

	"errors"

	"github.com/chatworker/worker/contract"
)

// What can stop a command on its way, besides the API call's own failure.
// Each is mapped to decide's event in one place, classify (retry.go).

// errStopping: the worker began shutting down before the call was made (it
// waited for an API call slot or for its project's budget), or while it
// waited to retry; the command goes back to the stream at once.
var errStopping = errors.New("shutting down before the API call was made")

// errLateSlot: the command's deadline passed while it waited for a free API
// call slot; no call was made.
var errLateSlot = errors.New("the deadline passed while waiting for a slot for the API call")

// rateWaitError: a call would wait for its project's budget longer than is
// worth a goroutine; no call was made, and the command goes back to the
// stream for that long.
type rateWaitError struct{ delay time.Duration }

func (r *rateWaitError) Error() string { return "waiting for the project's rate budget" }

// pausedError: the command's project is paused, because the API refused the
// worker's configuration (err, nil when the pause came before); the command
// goes back until just after the project's next check.
type pausedError struct {
	delay time.Duration
	err   error
}

func (p *pausedError) Error() string {
	if p.err == nil {
		return "the command's project is paused"
	}
	return p.err.Error()
}

func (p *pausedError) Unwrap() error { return p.err }

// quietError: the visitor's quiet hours hold the command for delay (until
// they end); it goes back to the stream without claiming or calling.
type quietError struct{ delay time.Duration }

func (q *quietError) Error() string {
	return fmt.Sprintf("inside the visitor's quiet hours: held for %s", q.delay.Round(time.Second))
}

// storeError: the idempotency store could not be asked; the command is not
// at fault.
type storeError struct{ err error }

func (s *storeError) Error() string { return s.err.Error() }
func (s *storeError) Unwrap() error { return s.err }

// notStoredError: the command's result or dead letter could not be stored,
// or the message has no JetStream metadata to settle it against.
type notStoredError struct{ err error }

func (n *notStoredError) Error() string { return n.err.Error() }
func (n *notStoredError) Unwrap() error { return n.err }

// panicError: handling the command panicked.
type panicError struct{ err *contract.Error }

func (p *panicError) Error() string { return p.err.Error() }
func (p *panicError) Unwrap() error { return p.err }
