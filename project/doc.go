// Package project holds what is true of a whole project rather than of one
// command: whether its commands may run, and if not why, since when and who
// said so (an operator, or the workers after an outage or a refused key).
// The states live in a NATS key-value bucket, so every replica acts on the
// same answer moments after a change, the answer survives restarts, and the
// command line, apps and metrics read what the workers read.
package project
