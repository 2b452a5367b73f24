// Package bench measures what one worker handles: throughput against the
// chat API simulator next to a minimal consume-call-ack loop (the limit),
// throughput against Little's-law bound at simulated API latencies, the
// latency the worker adds, memory, and scaling over worker processes and
// chats. `worker bench` and the benchmarks in this package run the same
// harness; nothing here asserts timings.
package bench
