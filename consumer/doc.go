// Package consumer is the worker's consume loop: it pulls commands from the
// CHAT_COMMANDS stream, executes each one once (guarded by the idempotency
// store), publishes a result or a dead letter, and only then acknowledges the
// command. One function, settle, turns a handling outcome into ack, delayed
// redelivery or dead letter, from the error's class alone.
package consumer
