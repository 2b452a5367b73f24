// Package contract is the wire format between apps and the worker: the
// command types and their table (Specs), how a command is decoded,
// validated and hashed, the subjects and chat tokens, the records the worker
// publishes (Result, DeadLetter) and keeps (IdempotencyRecord), and the
// error classes. It imports neither a NATS client nor any other package of
// the worker, so an app that only reads records needs nothing else.
package contract
