// Package workertest runs a real worker for tests, as River's rivertest
// does: one call starts an embedded nats-server, provisions the streams,
// starts the Chat API simulator and a worker, and cleans all of it up when
// the test ends. It also has the one Eventually that tests poll with.
package workertest
