// Package chatsim is an in-memory simulator of the GoSquared Live Chat API
// for local development, demos, tests and benchmarks. It serves the same
// endpoints, error bodies and X-RateLimit-* headers as the API (as described
// in the project's API spec), keeps conversations in memory, records every
// applied effect, and can inject latency, errors, dropped connections, hangs
// and truncated bodies.
package chatsim
