package consumer

import "time"

// outcome is what becomes of a command message, in one vocabulary: decide
// answers with one, the command span carries it (chatworker.command.outcome),
// a result's status is one (succeeded or duplicate), and the metrics'
// labels are read from it. The values are what spans and dashboards show:
// they do not change.
type outcome string

const (
	// Steps on the way, never a message's last word.
	outcomeProceed   outcome = "proceed"    // make the API call
	outcomeRetryHere outcome = "retry_here" // wait decision.Delay in-process, then call again

	// What a delivery ends with.
	outcomeSucceeded  outcome = "succeeded"   // the result is stored, then acknowledged (contract.StatusSucceeded)
	outcomeDuplicate  outcome = "duplicate"   // the id had succeeded before: its result again (contract.StatusDuplicate)
	outcomeDeadLetter outcome = "dead_letter" // the dead letter is stored, then the message terminated
	outcomeRetryLater outcome = "retry_later" // handed back, to come again after a delay
	outcomeHandedBack outcome = "handed_back" // handed back at once: shutting down, or the record was not stored
	outcomeWaiting    outcome = "waiting_for_order"
	outcomeRequeued   outcome = "requeued" // an older command of its chat arrived in the worker: it runs after that one
	// A first delivery without a claim found, once its call was made, that
	// another delivery of the id had taken it: it leaves the message to
	// that one, neither acknowledged nor handed back (settleTentative).
	outcomeYielded outcome = "yielded"
)

// Outcomes of a command, the values of chatworker_command_latency_seconds'
// outcome label.
const (
	OutcomeResult     = "result"
	OutcomeDeadLetter = string(outcomeDeadLetter)
)

// handedBackAfter is the outcome of handing a message back for delay.
func handedBackAfter(delay time.Duration) outcome {
	if delay > 0 {
		return outcomeRetryLater
	}
	return outcomeHandedBack
}

// latencyLabel is the outcome's value in chatworker_command_latency_seconds,
// "" for one whose latency is not recorded (the command is not done).
func (o outcome) latencyLabel() string {
	switch o {
	case outcomeSucceeded, outcomeDuplicate:
		return OutcomeResult
	case outcomeDeadLetter:
		return OutcomeDeadLetter
	}
	return ""
}
