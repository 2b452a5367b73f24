package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"

	"github.com/chatworker/worker/internal/backoff"
)

// RetryPolicy is the budget and pace of retries for one command. The budget
// spans all deliveries: attempts and the first attempt's time live in the
// idempotency record, so a restart does not reset them.
type RetryPolicy struct {
	MaxAttempts     int           // API calls in all; 8
	MaxElapsed      time.Duration // from the first attempt; 1 hour
	InitialInterval time.Duration // 200 ms
	MaxInterval     time.Duration // 5 minutes
	// InProcessMax is the longest wait spent in-process: a longer one hands
	// the command back with NakWithDelay, so no goroutine sleeps for minutes
	// and the slot serves other commands meanwhile.
	InProcessMax time.Duration // 2 s
	// MaxAbandoned is the poison backstop: a command whose claim was
	// abandoned this many times (a worker's lease ran out without an
	// outcome: it crashed or stalled on it) is dead-lettered as exhausted,
	// however often it was delivered for other reasons. 3.
	MaxAbandoned int
}

// Defaults of RetryPolicy.
const (
	DefaultMaxAttempts     = 8
	DefaultMaxElapsed      = time.Hour
	DefaultInitialInterval = 200 * time.Millisecond
	DefaultMaxInterval     = 5 * time.Minute
	DefaultInProcessMax    = 2 * time.Second
	DefaultMaxAbandoned    = 3
)

// WithDefaults returns p with every zero field set to its default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.InProcessMax == 0 {
		p.InProcessMax = DefaultInProcessMax
	}
	if p.MaxAbandoned == 0 {
		p.MaxAbandoned = DefaultMaxAbandoned
	}
	return p
}

// Validate reports every setting that cannot work; zero fields take their
// defaults and are valid.
func (p RetryPolicy) Validate() error {
	p = p.WithDefaults()
	var errs []error
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry max attempts %d: want at least 1", p.MaxAttempts))
	}
	if p.MaxAbandoned < 1 {
		errs = append(errs, fmt.Errorf("retry max abandoned %d: want at least 1", p.MaxAbandoned))
	}
	for name, d := range map[string]time.Duration{"max elapsed": p.MaxElapsed, "initial interval": p.InitialInterval,
		"max interval": p.MaxInterval, "in-process max": p.InProcessMax} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("retry %s %v: want a positive duration", name, d))
		}
	}
	if p.MaxInterval < p.InitialInterval {
		errs = append(errs, fmt.Errorf("retry max interval %v is below the initial interval %v", p.MaxInterval, p.InitialInterval))
	}
	return errors.Join(errs...)
}

// Delay is the wait before the attempt after the given number of attempts:
// exponential with full jitter (a uniform draw below the exponential cap),
// but never shorter than the server's hint (Retry-After).
func (p RetryPolicy) Delay(attempts int, hint time.Duration) time.Duration {
	return max(backoff.Exponential{Initial: p.InitialInterval, Max: p.MaxInterval}.Full(attempts), hint)
}

// Exhausted reports whether a command that has made attempts API calls,
// starting at first, may not be tried again.
func (p RetryPolicy) Exhausted(attempts int, first, now time.Time) bool {
	return attempts >= p.MaxAttempts || (!first.IsZero() && now.Sub(first) >= p.MaxElapsed)
}

// event is what just happened to a command message; with the facts in
// situation it is all that decide needs.
type event uint8

const (
	// beforeCall: the command is claimed and about to be sent to the API.
	beforeCall event = iota
	// succeeded: the API call succeeded, or an earlier run already had.
	succeeded
	// failed: the command failed with situation.Class: it could not be
	// decoded, its id conflicts, or the API call failed.
	failed
	// panicked: handling the command panicked (situation.Class internal).
	panicked
	// busy: another worker holds the command's claim; situation.Hint is
	// the time left on its lease.
	busy
	// stopping: the worker is shutting down before the call was made or
	// while it waited to retry.
	stopping
	// storeDown: the idempotency store could not be read. The command is
	// not at fault: it never becomes a dead letter and spends no attempts.
	storeDown
	// recordNotStored: the result or dead letter could not be stored, or
	// the message has no JetStream metadata to settle it against.
	recordNotStored
	// paused: the command's project is paused (the API refused the
	// worker's configuration, now or before); situation.Hint is how long
	// until just after its next check. No attempt is spent.
	paused
	// rateWait: the command's call would wait situation.Hint for its
	// project's rate budget, longer than is worth a goroutine.
	rateWait
)

// situation is everything decide weighs about one command message.
type situation struct {
	Event event
	Class actions.Class // the failure's class, with failed
	// Attempts and FirstAttemptAt are the budget spent so far, over all
	// deliveries (from the idempotency record).
	Attempts       int
	FirstAttemptAt time.Time
	Delivered      uint64 // JetStream's delivery count of this message
	Abandoned      int    // claims on the id that lapsed without an outcome (from the idempotency record)
	// Hint is the server's Retry-After (failed), a busy claim's lease left
	// (busy), the time until just after a paused project's next check
	// (paused) or the wait for the project's rate budget (rateWait).
	Hint time.Duration
	// Deadline is when the command stops being worth executing; zero for
	// none. No retry is scheduled whose wait would end at or after it.
	Deadline time.Time
	Now      time.Time
}

// decision is decide's answer.
type decision struct {
	Outcome outcome
	Delay   time.Duration
	Class   actions.Class // with outcomeDeadLetter
}

// minBusyDelay keeps a busy command from coming back at once when the
// other run's lease is about to end.
const minBusyDelay = 50 * time.Millisecond

// handBackFor is the decision to hand a message back for delay.
func handBackFor(delay time.Duration) decision {
	return decision{Outcome: handedBackAfter(delay), Delay: delay}
}

// classify is the one place that says which event a failure is: the
// callers hand decide what stopped the command, as an error, and classify
// reads it. A failure of none of the worker's own kinds is the command's
// (or the API's): failed, with its class and the server's retry hint.
func classify(err error) (ev event, class actions.Class, hint time.Duration) {
	var (
		notStored *notStoredError
		store     *storeError
		bz        *idempotency.BusyError
		pause     *pausedError
		quiet     *quietError
		rate      *rateWaitError
		p         *panicError
	)
	switch {
	case errors.Is(err, errStopping):
		return stopping, "", 0
	case errors.As(err, &notStored):
		return recordNotStored, "", 0
	case errors.As(err, &store):
		return storeDown, "", 0
	case errors.As(err, &bz):
		return busy, "", bz.RetryIn
	case errors.As(err, &pause):
		return paused, "", pause.delay
	case errors.As(err, &quiet):
		return paused, "", quiet.delay
	case errors.As(err, &rate):
		return rateWait, "", rate.delay
	case errors.As(err, &p):
		return panicked, contract.ClassInternal, 0
	}
	hint, _ = chat.RetryAfter(err)
	return failed, execute.ClassOf(err), hint
}

// decideUnclaimed is decide for a command stopped before it held a claim
// (or after, for what does not weigh the claim): what happened is err,
// and the message was delivered this often.
func (p RetryPolicy) decideUnclaimed(err error, delivered uint64) decision {
	ev, class, hint := classify(err)
	return p.decide(situation{Event: ev, Class: class, Hint: hint, Delivered: delivered})
}

// decide is the one place that turns what happened to a command into what
// becomes of it; the callers only carry the decision out. It is a pure
// function of s and the policy, except for the jitter of the delays.
func (p RetryPolicy) decide(s situation) decision {
	expired := !s.Deadline.IsZero() && !s.Now.Before(s.Deadline)
	switch s.Event {
	case beforeCall:
		switch {
		case expired:
			return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExpired}
		case s.Abandoned >= p.MaxAbandoned:
			// The poison backstop: workers died or stalled on it again
			// and again.
			return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExhausted}
		case p.Exhausted(s.Attempts, s.FirstAttemptAt, s.Now):
			// Spent on an earlier delivery whose dead letter could not be
			// stored: dead-letter it again without another call.
			return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExhausted}
		}
		return decision{Outcome: outcomeProceed}
	case succeeded:
		return decision{Outcome: outcomeSucceeded}
	case stopping:
		return decision{Outcome: outcomeHandedBack}
	case busy:
		// Usually the other run finishes soon: poll with backoff, but
		// never past the point where its lease expires and we could take
		// over.
		return handBackFor(max(min(s.Hint, p.Delay(int(s.Delivered), 0)), minBusyDelay))
	case storeDown, recordNotStored:
		// NATS or the store failed, not the command: back to the stream,
		// more slowly the longer it lasts, for as long as it lasts.
		return handBackFor(infraDelay(s.Delivered))
	case paused, rateWait:
		return handBackFor(s.Hint)
	}
	// failed or panicked
	if !s.Class.Retryable() {
		return decision{Outcome: outcomeDeadLetter, Class: s.Class}
	}
	if p.Exhausted(s.Attempts, s.FirstAttemptAt, s.Now) {
		return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExhausted}
	}
	if expired {
		return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExpired}
	}
	hint := s.Hint
	if s.Event == panicked {
		// A panic is retried across deliveries only, and without the
		// server's hint: there is no answer to take one from.
		hint = 0
	}
	delay := p.Delay(s.Attempts, hint)
	if !s.Deadline.IsZero() && !s.Now.Add(delay).Before(s.Deadline) {
		return decision{Outcome: outcomeDeadLetter, Class: contract.ClassExpired}
	}
	if s.Event == panicked || delay > p.InProcessMax {
		return handBackFor(delay)
	}
	return decision{Outcome: outcomeRetryHere, Delay: delay}
}
