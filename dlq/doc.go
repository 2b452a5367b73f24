// Package dlq lets operators read, replay and purge the dead letters in
// CHAT_DLQ. It reads with ephemeral ordered consumers (nothing durable to
// clean up), republishes each command to its original subject with a
// Nats-Msg-Id derived from its dead letter, and removes a dead letter only
// after JetStream stored its republish, so an interrupted replay can simply
// be run again. cmd/worker's `dlq` subcommands are a thin layer over it.
package dlq
