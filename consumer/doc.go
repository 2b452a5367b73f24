// Package consumer is the worker's consume loop: it pulls commands from the
// CHAT_COMMANDS stream, executes each one once (guarded by the idempotency
// store), publishes a result or a dead letter, and only then acknowledges the
// command. What becomes of a command (call the API, retry here, hand back
// after a delay, dead-letter with a class, succeed) is decided in one pure
// function, RetryPolicy.decide in retry.go; handle.go gathers its inputs,
// call.go makes one API call, records.go builds the records and settle.go
// stores them and settles the message.
package consumer
