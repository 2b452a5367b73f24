// Package bench measures what one worker handles: throughput against the
// chat API simulator next to a minimal consume-call-ack loop (the limit),
// throughput against Little's-law bound at simulated API latencies, the
// latency the worker adds, memory, and scaling over worker processes and
// chats; and, in a soak, how the cost grows as work accumulates: one worker
// over 500,000 commands in rounds, with its memory, the NATS server's and
// the stores' bytes per command round by round. `worker bench` and the
// benchmarks in this package run the same harness; nothing here asserts
// timings.
package bench
