package main

import (
	"fmt"
	"time"

	"github.com/chatworker/worker/consumer"
)

// consumerFlags shape the durable consumer. worker run and worker provision
// both take them, from the same variables, so that a provision Job reading
// the workers' ConfigMap leaves the consumer as the workers set it.
type consumerFlags struct {
	concurrency int
	ackWait     time.Duration
	maxDeliver  int
}

func (c *consumerFlags) register(fs *flagSet) {
	fs.Int(&c.concurrency, "concurrency", "WORKER_CONCURRENCY", consumer.DefaultConcurrency, "API calls at once (up to twice as many commands are handled at once)")
	fs.Duration(&c.ackWait, "ack-wait", "WORKER_ACK_WAIT", consumer.DefaultAckWait, "how long JetStream waits for an acknowledgement before redelivering (the worker extends it while a call runs)")
	fs.Int(&c.maxDeliver, "max-deliver", "WORKER_MAX_DELIVER", consumer.DefaultMaxDeliver, "deliveries of one command before JetStream gives up on it (the worker then settles it); -1: unlimited, since commands also go back to wait for a paused project, a rate budget or an outage")
	fs.check(c.check)
}

// check validates the values, one clear sentence per problem.
func (c *consumerFlags) check() []error {
	var errs []error
	if c.concurrency < 1 || c.concurrency > 100000 {
		errs = append(errs, fmt.Errorf("--concurrency %d: want 1 to 100000", c.concurrency))
	}
	if c.maxDeliver < 2 && c.maxDeliver != -1 {
		errs = append(errs, fmt.Errorf("--max-deliver %d: want -1 (unlimited) or at least 2", c.maxDeliver))
	}
	if c.ackWait <= 0 {
		errs = append(errs, fmt.Errorf("--ack-wait %v: want a positive duration such as 30s", c.ackWait))
	}
	return errs
}

// apply sets the consumer's settings in t.
func (c *consumerFlags) apply(t *consumer.Topology) {
	t.AckWait, t.MaxDeliver = c.ackWait, c.maxDeliver
	t.MaxAckPending = consumer.MaxAckPendingFor(c.concurrency)
}
