package contract

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Class is what a failure says about the command. The consumer decides
// between acknowledging, retrying and dead-lettering from it together with
// the attempts so far, the command's deadline and what is true of the
// command's project (paused, out of budget), never from the class alone.
type Class string

const (
	// ClassInvalid: the command itself is malformed. Never retried.
	ClassInvalid Class = "invalid"
	// ClassPermanent: the API refused the command (4xx other than 408/425/429),
	// or the worker may not execute it. Never retried.
	ClassPermanent Class = "permanent"
	// ClassRetryable: a network error, a timeout, 408, 425, 429 or 5xx.
	ClassRetryable Class = "retryable"
	// ClassConflict: an id reused with a different body.
	ClassConflict Class = "conflict"
	// ClassExhausted: retryable failures outlasted the retry budget. Only the
	// consumer assigns it; it names a dead letter, not an error from a call.
	ClassExhausted Class = "exhausted"
	// ClassExpired: the command's not_after deadline passed before an API
	// call could start, or a retry would have started at or after it. No
	// call is made at or after the deadline; never retried. Like exhausted,
	// only the consumer assigns it.
	ClassExpired Class = "expired"
	// ClassCapped: a send command over its chat's frequency cap (its own
	// or its project's): no API call was made. Never retried; a replay
	// sends it anyway. Like expired, only the consumer assigns it.
	ClassCapped Class = "capped"
	// ClassInternal: anything unknown. Treated like a retryable failure, since
	// the cause may be on the worker's side.
	ClassInternal Class = "internal"
)

// DeadLetterClasses are the classes a dead letter can have.
func DeadLetterClasses() []Class {
	return []Class{ClassInvalid, ClassPermanent, ClassExhausted, ClassConflict, ClassExpired, ClassCapped}
}

// Error is a failure with a class and a message safe to show a person: it
// never contains credentials.
type Error struct {
	Class Class
	Msg   string
	Err   error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Invalidf returns an error of class invalid.
func Invalidf(format string, args ...any) *Error {
	return &Error{Class: ClassInvalid, Msg: Clip(fmt.Sprintf(format, args...))}
}

// Permanentf returns an error of class permanent.
func Permanentf(format string, args ...any) *Error {
	return &Error{Class: ClassPermanent, Msg: Clip(fmt.Sprintf(format, args...))}
}

// MaxMessageLen bounds the message of an error made by Invalidf or
// Permanentf. Messages quote what was received (a type, a subject), and a
// hostile command must not turn its dead letter's reason into a copy of
// itself, many times escaped.
const MaxMessageLen = 1024

// Clip cuts s to MaxMessageLen bytes on a rune boundary, as every message
// of Invalidf and Permanentf is cut.
func Clip(s string) string {
	if len(s) <= MaxMessageLen {
		return s
	}
	n := MaxMessageLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// ClassOf classifies the errors the worker makes itself (*Error) and a
// timeout; anything else is internal. It looks through wrapping, so a caller
// may add context with fmt.Errorf("...: %w", err) without changing the
// decision. The idempotency store's conflict is an *Error already; the Chat
// API client's errors are classified by execute.ClassOf, which keeps this
// package, and every app that publishes commands, free of the API client.
func ClassOf(err error) Class {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ClassRetryable
	}
	return ClassInternal
}

// Retryable reports whether a failure of this class may succeed if tried
// again later.
func (c Class) Retryable() bool { return c == ClassRetryable || c == ClassInternal }

// Expired returns an error of class expired for cmd. cause, when not nil,
// is the failure that made a retry necessary: its API status stays readable
// through the wrapping.
func Expired(cmd Command, cause error) *Error {
	msg := fmt.Sprintf("its deadline (not_after %s) passed before an API call could start", cmd.NotAfter.Format(time.RFC3339Nano))
	if cause != nil {
		msg = fmt.Sprintf("its deadline (not_after %s) would pass before the next attempt could start; the last attempt failed", cmd.NotAfter.Format(time.RFC3339Nano))
	}
	return &Error{Class: ClassExpired, Msg: msg, Err: cause}
}

// PastDeadline reports whether cmd may no longer start an API call at t: its
// not_after is set and not after t.
func (c Command) PastDeadline(t time.Time) bool {
	return !c.NotAfter.IsZero() && !t.Before(c.NotAfter)
}
