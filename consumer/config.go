package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/chatworker/worker/project"

	"github.com/chatworker/worker/internal/identity"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultConcurrency   = 64
	DefaultShutdownGrace = 20 * time.Second
)

// Config configures a Worker. Zero fields take the defaults (Default...).
type Config struct {
	Topology Topology
	Retry    RetryPolicy
	// Concurrency is how many API calls the worker makes at once; 64. Up to
	// twice as many commands are handled at once: while Concurrency of them
	// call the API, the others record outcomes or claim their ids, so that
	// bookkeeping never holds up a call (see Run).
	Concurrency int
	// ShutdownGrace is how long in-flight commands may take to finish after
	// Run's context is cancelled; then they are handed back unacknowledged.
	ShutdownGrace time.Duration // 20 s
	// Name identifies this worker in dead letters ("host/pid").
	Name string
	// Unordered turns per-chat order off: commands of one chat may then run
	// in parallel (one fewer JetStream round trip per command).
	Unordered bool
	// ClaimAhead lets a chat's lane check and claim its next command while
	// the one before it is stored (ahead.go). Off by default: it hides a
	// store round trip from each chat's commands, which pays only while
	// they wait on a slow API, and costs every command a goroutine and a
	// second decode, which a backlog at low API latency pays in throughput
	// (docs/performance.md, "Against the first release").
	ClaimAhead bool
	// Claimless lets the first delivery of a command run without claiming
	// its id in the idempotency store first, when per-chat order is on:
	// its chat's lane already makes it the only delivery of its id in
	// flight. One fewer store write per command; the outcome record is then
	// created after the call, and redeliveries still claim (see "First
	// deliveries" in handle.go). Off in the zero Config; `worker run` turns
	// it on.
	Claimless bool
	Logger    *zap.Logger
	Metrics   *Metrics // optional
	// Tracer, when set, traces every delivery of a command (see
	// tracing.go); nil starts no span at all.
	Tracer trace.TracerProvider
	// Projects, when set, lets the worker pause a project whose
	// configuration the API refuses and pace each project's commands by
	// its rate budget outside the API call slots (see projects.go); Run
	// then checks the default project before it consumes.
	Projects Projects
	// ProjectStates, when set, holds what is true of each project for every
	// replica: pauses by operators, for configuration and for outages
	// (package project). Without it a configuration pause is this worker's
	// alone and outages are not detected.
	ProjectStates *project.Store
	// Caps, when set, counts the sends under a frequency cap of each chat
	// for every replica (caps.go); without it Run opens the bucket
	// DefaultCapsBucket itself.
	Caps *ChatCaps
	// Outage is the rule that pauses a project for an outage (with
	// ProjectStates); zero fields take project's defaults.
	Outage project.OutageRule
	// ProjectMetrics records each project's pause and rate-budget waits
	// (optional; *OnCallMetrics implements it).
	ProjectMetrics ProjectMetrics
	// Latency records each command's time from its publish (the stream's
	// timestamp) to its stored result or dead letter (optional;
	// *OnCallMetrics implements it).
	Latency LatencyObserver

	lease time.Duration // the idempotency store's lease, when it says (New)
}

func (c Config) withDefaults() Config {
	c.Topology = c.Topology.WithDefaults()
	c.Retry = c.Retry.WithDefaults()
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Name == "" {
		c.Name = identity.Name()
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every setting that cannot work, one sentence each. Zero
// fields are valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d: want at least 1", c.Concurrency))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown grace %v: want a positive duration", c.ShutdownGrace))
	}
	if err := c.Topology.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	// The keep-alive renews the lease every third of AckWait (call.go): a
	// lease no longer than that lapses between renewals, and another worker
	// could take over a command that is still running.
	if c.lease > 0 && c.lease <= c.Topology.AckWait/3 {
		errs = append(errs, fmt.Errorf("the idempotency lease %v must exceed a third of the ack wait %v, the interval at which the worker renews it", c.lease, c.Topology.AckWait))
	}
	return errors.Join(errs...)
}
