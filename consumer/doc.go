// Package consumer is the worker's consume loop: it pulls commands from the
// CHAT_COMMANDS stream, executes each one once (guarded by the idempotency
// store), publishes a result or a dead letter, and only then acknowledges the
// command.
//
// The Worker routes (worker.go, order.go); components with their own state
// do the work: the executor claims, calls and decides (handle.go, call.go),
// the completer stores records and settles messages (settle.go), the orderer
// keeps per-chat order, the project gate pauses and paces projects, the
// rescuer settles what JetStream gave up delivering (backstop.go). What
// happened to a command is classified in one function, classify, and what
// becomes of it is decided in another, RetryPolicy.decide (both in
// retry.go), in one vocabulary, outcome (outcome.go).
package consumer
