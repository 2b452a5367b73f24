// Package actions defines the commands the worker executes (send, note,
// archive): their wire format, the subjects they travel on, how they are
// decoded and validated, how apps publish them, and how each one is carried
// out against the Chat API. It also holds the error classes that decide what
// the consumer does with a failure.
package actions
