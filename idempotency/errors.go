package idempotency

import (
	"errors"
	"fmt"
	"time"

	"github.com/chatworker/worker/contract"
)

// ErrConflict means the id was used before with a different command body.
// It carries its class, so the worker classifies it as every other failure
// of a command, without knowing this package.
var ErrConflict error = &contract.Error{Class: contract.ClassConflict, Msg: "idempotency: id reused with a different body"}

var (
	// ErrBusy means another claim on the id holds a live lease. Claim returns
	// it as a *BusyError that says when the lease runs out.
	ErrBusy = errors.New("idempotency: id is being processed elsewhere")
	// ErrDuplicate means the id already succeeded with the same body. Claim
	// returns it as a *DuplicateError carrying the stored record.
	ErrDuplicate = errors.New("idempotency: id already succeeded")
	// ErrLeaseLost means the record changed since the claim was taken (its
	// lease expired and someone else took it over, or the claim was already
	// completed or released), so the write was refused.
	ErrLeaseLost = errors.New("idempotency: lease lost, record changed under us")
	// ErrNotFound means no record exists for the id. It wraps
	// jetstream.ErrKeyNotFound.
	ErrNotFound = errors.New("idempotency: no record for id")
)

// BusyError is returned by Claim when another claim holds a live lease on the
// id. The command must not run now; retry after RetryIn.
type BusyError struct {
	RetryIn time.Duration // until the other lease expires; a retry hint, not a promise
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s (lease expires in %s)", ErrBusy.Error(), e.RetryIn.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// DuplicateError is returned by Claim when the id already succeeded with the
// same body hash. Record holds the original outcome, so the caller can publish
// a "duplicate" result without calling the API again.
type DuplicateError struct {
	Record Record
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("%s (at %s, api status %d)", ErrDuplicate.Error(),
		e.Record.CompletedAt.UTC().Format(time.RFC3339), e.Record.APIStatus)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }
