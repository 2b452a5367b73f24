// Package export copies every conversation of the Chat API, with its
// messages, notes and events, to a JSON Lines file or directory or to a NATS
// JetStream Object Store bucket, for compliance archives. Runs are
// incremental (a checkpoint per conversation records how far it was
// exported) and resumable: a run killed at any point and run again neither
// duplicates nor loses a line. ExportChat exports one whole conversation on
// demand, for the queue's export command.
package export
