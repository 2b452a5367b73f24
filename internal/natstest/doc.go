// Package natstest runs an embedded JetStream-enabled nats-server for tests.
// Each server listens on a random local port with its store in t.TempDir(), and
// everything it starts is stopped by t.Cleanup, so tests stay hermetic and
// leak-free.
package natstest
