package actions

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrAlreadyPublished: the stream already held this command (same id,
	// same body), published within its duplicate window, so this publish
	// stored nothing and needs nothing more. A publish retried after a
	// timeout, when the first try was stored after all, ends this way:
	// treat it as success.
	ErrAlreadyPublished = errors.New("already published")
	// ErrIDReused: the stream already held a different command under this
	// id, so this one was dropped and will never run. Publish it with a new
	// id. It is also reported when what was stored can no longer be read to
	// compare (see DuplicateError.Compared).
	ErrIDReused = errors.New("id already used for a different command")
)

// DuplicateError is returned by Publish when JetStream reports the publish
// as a duplicate of an id it stored within its duplicate window. errors.Is
// tells the two cases apart: ErrAlreadyPublished when the stored command is
// this one, ErrIDReused otherwise.
type DuplicateError struct {
	ID       string
	Stream   string
	Sequence uint64 // of the message stored first under ID
	// Same: the stored command is this one (same fields, however laid out).
	Same bool
	// Compared: what was stored could be read: the message itself while it
	// waits in the stream, else the id's idempotency record. When neither
	// is left, Same is false: the command may well have been dropped.
	Compared bool
}

func (e *DuplicateError) Error() string {
	switch {
	case e.Same:
		return fmt.Sprintf("command id %q was already published (%s sequence %d) with this body: nothing more to do", e.ID, e.Stream, e.Sequence)
	case e.Compared:
		return fmt.Sprintf("command id %q was already published (%s sequence %d) with a different body, so this command was dropped and will not run: publish it with a new id", e.ID, e.Stream, e.Sequence)
	}
	return fmt.Sprintf("command id %q was already published (%s sequence %d), and what was stored under it can no longer be read to compare, so this command may have been dropped: if it differs, publish it with a new id", e.ID, e.Stream, e.Sequence)
}

// Is makes errors.Is(err, ErrAlreadyPublished) or errors.Is(err,
// ErrIDReused) true, whichever applies.
func (e *DuplicateError) Is(target error) bool {
	return target == ErrAlreadyPublished && e.Same || target == ErrIDReused && !e.Same
}

// compareDuplicate finds what was stored for cmd.ID when the publish of cmd
// was reported as a duplicate of message seq in stream, and compares it
// with cmd by Hash (the worker's own notion of "the same command").
func compareDuplicate(ctx context.Context, js jetstream.JetStream, cmd Command, stream string, seq uint64, o options) error {
	dup := &DuplicateError{ID: cmd.ID, Stream: stream, Sequence: seq}
	want := cmd.Hash()
	// While the command waits in the work queue, the message is there.
	if st, err := js.Stream(ctx, stream); err == nil {
		m, err := st.GetMsg(ctx, seq)
		switch {
		case err == nil:
			dup.Compared = true
			stored, derr := contract.DecodeBody(m.Data)
			dup.Same = derr == nil && stored.Hash() == want
			return dup
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return fmt.Errorf("publish %s command %s: it was a duplicate, and reading the stored one failed: %w", cmd.Type, cmd.ID, err)
		}
	} else {
		return fmt.Errorf("publish %s command %s: it was a duplicate, and reading the stream %s failed: %w", cmd.Type, cmd.ID, stream, err)
	}
	// The worker took it: its idempotency record keeps the hash.
	rec, err := lookupRecord(ctx, js, o.bucket, cmd.ID)
	if err != nil {
		return fmt.Errorf("publish %s command %s: it was a duplicate, and %w", cmd.Type, cmd.ID, err)
	}
	if rec == nil {
		return dup
	}
	dup.Compared = true
	dup.Same = rec.Hash == want
	return dup
}
