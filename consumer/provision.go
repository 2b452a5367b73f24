package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
)

// Topology names and sizes the streams and the consumer. The zero value of
// each field takes the default documented in the README.
type Topology struct {
	Subjects actions.Subjects

	CommandsStream    string // CHAT_COMMANDS
	ResultsStream     string // CHAT_RESULTS
	DeadLettersStream string // CHAT_DLQ
	Durable           string // chat-worker

	Replicas int                   // 1; 3 on a NATS cluster
	Storage  jetstream.StorageType // file

	// Retention, one policy with the idempotency records' TTL (see
	// RetentionPolicy). Dead letters outlive the commands they came from.
	CommandsMaxAge      time.Duration // 7 days
	ResultsMaxAge       time.Duration // 7 days
	DeadLettersMaxAge   time.Duration // 30 days
	DeadLettersMaxMsgs  int64         // unlimited
	DeadLettersMaxBytes int64         // 1 GiB
	// DuplicateWindow is how long each stream remembers Nats-Msg-Id values.
	DuplicateWindow time.Duration // 10 minutes
	// IdempotencyTTL is the idempotency store's TTL (idempotency.Config.TTL):
	// how long a command id is remembered after its last write. Provision
	// does not create the bucket (idempotency.Open does); Validate checks
	// the other retention settings against it.
	IdempotencyTTL time.Duration // idempotency.DefaultTTL, 24 hours

	AckWait time.Duration // 30 s; InProgress extends it for long calls
	// MaxDeliver limits deliveries of one command; -1, unlimited: commands
	// go back to the stream for reasons that are not their fault (a paused
	// project, a rate budget, an outage), and poison is caught by
	// RetryPolicy.MaxAbandoned instead (see backstop.go).
	MaxDeliver    int
	MaxAckPending int // MaxAckPendingFor(concurrency); 10000
}

// Defaults of Topology that a deployment commonly sets.
const (
	DefaultAckWait    = 30 * time.Second
	DefaultMaxDeliver = -1
	DefaultDurable    = "chat-worker"
	// DefaultDeadLettersMaxAge: dead letters outlive the commands they
	// came from (7 days).
	DefaultDeadLettersMaxAge = 30 * 24 * time.Hour
	DefaultCommandsMaxAge    = 7 * 24 * time.Hour
	DefaultResultsMaxAge     = 7 * 24 * time.Hour
	DefaultDuplicateWindow   = 10 * time.Minute
)

// CommandsMaxConsumers bounds the consumers of the commands stream: the
// durables of up to about 10,000 projects (docs/sizing.md). nats-server
// gives a stream 1,000 unless it sets its own limit.
const CommandsMaxConsumers = 10050

// MaxAckPendingFor is the consumer's MaxAckPending for a worker making
// concurrency API calls at once: sixteen times as many, at least 10,000.
// Commands handed back with a delay (a paused project, one waiting for its
// rate budget, an outage) stay pending for the consumer until they return
// (nats-server's processNak), so the room above concurrency is what lets
// one project's held-back backlog leave the others' commands deliverable
// (docs/failures.md), besides a second replica and the chats' lanes.
func MaxAckPendingFor(concurrency int) int { return max(10000, 16*concurrency) }

// WithDefaults returns t with every zero field set to its default.
func (t Topology) WithDefaults() Topology {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&t.CommandsStream, contract.DefaultCommandsStream)
	def(&t.ResultsStream, contract.DefaultResultsStream)
	def(&t.DeadLettersStream, contract.DefaultDeadLettersStream)
	def(&t.Durable, DefaultDurable)
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	dur(&t.CommandsMaxAge, DefaultCommandsMaxAge)
	dur(&t.ResultsMaxAge, DefaultResultsMaxAge)
	dur(&t.DeadLettersMaxAge, DefaultDeadLettersMaxAge)
	dur(&t.DuplicateWindow, DefaultDuplicateWindow)
	dur(&t.IdempotencyTTL, idempotency.DefaultTTL)
	dur(&t.AckWait, DefaultAckWait)
	if t.Replicas == 0 {
		t.Replicas = 1
	}
	if t.DeadLettersMaxBytes == 0 {
		t.DeadLettersMaxBytes = 1 << 30
	}
	if t.DeadLettersMaxMsgs == 0 {
		t.DeadLettersMaxMsgs = -1
	}
	if t.MaxDeliver == 0 {
		t.MaxDeliver = DefaultMaxDeliver
	}
	if t.MaxAckPending == 0 {
		t.MaxAckPending = MaxAckPendingFor(0)
	}
	return t
}

// Validate reports every setting that cannot work; zero fields take their
// defaults and are valid.
func (t Topology) Validate() error {
	t = t.WithDefaults()
	var errs []error
	if t.Replicas < 1 || t.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: want 1 to 5", t.Replicas))
	}
	// The backstop settles a command JetStream stops delivering; one
	// delivery would leave no room for a single retry.
	if t.MaxDeliver < 2 && t.MaxDeliver != -1 {
		errs = append(errs, fmt.Errorf("max deliver %d: want -1 (unlimited) or at least 2", t.MaxDeliver))
	}
	if t.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("max ack pending %d: want at least 1", t.MaxAckPending))
	}
	for name, d := range map[string]time.Duration{"ack wait": t.AckWait, "commands max age": t.CommandsMaxAge,
		"results max age": t.ResultsMaxAge, "dead letters max age": t.DeadLettersMaxAge, "duplicate window": t.DuplicateWindow,
		"idempotency TTL": t.IdempotencyTTL} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: want a positive duration", name, d))
		}
	}
	if _, refused := t.RetentionPolicy(); refused != nil {
		errs = append(errs, refused)
	}
	return errors.Join(errs...)
}

// RetentionPolicy checks the retention settings against each other
// (docs/retention.md). The policy: a command id is remembered at least as
// long as a copy of the command can still arrive, and its result is kept at
// least as long as its id. refused joins the combinations that cannot keep
// the guarantee (Validate refuses them); warnings are the combinations that
// weaken it, a sentence each, for the log at start. Each message names the
// worker's flags and says what to change. Negative durations are left to
// Validate.
func (t Topology) RetentionPolicy() (warnings []string, refused error) {
	t = t.WithDefaults()
	if min(t.CommandsMaxAge, t.ResultsMaxAge, t.DeadLettersMaxAge, t.DuplicateWindow, t.IdempotencyTTL) < 0 {
		return nil, nil
	}
	var errs []error
	// JetStream itself refuses a stream whose window outlasts its messages.
	for _, s := range []struct {
		what, flag string
		age        time.Duration
	}{
		{"commands", "--commands-max-age", t.CommandsMaxAge},
		{"results", "--results-max-age", t.ResultsMaxAge},
		{"dead letters", "--dlq-max-age", t.DeadLettersMaxAge},
	} {
		if t.DuplicateWindow > s.age {
			errs = append(errs, fmt.Errorf("the duplicate window %s (--duplicate-window) outlasts the %s' retention %s (%s): "+
				"a stream cannot remember ids longer than its messages; lower --duplicate-window or raise %s",
				short(t.DuplicateWindow), s.what, short(s.age), s.flag, s.flag))
		}
	}
	// Within the window the stream drops a republished command; after it,
	// only the id's record does.
	if t.IdempotencyTTL <= t.DuplicateWindow {
		errs = append(errs, fmt.Errorf("the idempotency TTL %s (--idempotency-ttl) must be longer than the duplicate window %s (--duplicate-window): "+
			"after the window only the id's record keeps a republished command from running again; raise --idempotency-ttl or lower --duplicate-window",
			short(t.IdempotencyTTL), short(t.DuplicateWindow)))
	}
	// The defaults have this gap (a day of records, a week of commands):
	// docs/retention.md says so once, rather than a warning at every start
	// that operators would learn to ignore. Values an operator chose are
	// told what they weaken.
	defaults := t.IdempotencyTTL == idempotency.DefaultTTL && t.CommandsMaxAge == DefaultCommandsMaxAge
	if t.IdempotencyTTL < t.CommandsMaxAge && !defaults {
		warnings = append(warnings, fmt.Sprintf("command ids are remembered %s (--idempotency-ttl), commands are kept %s (--commands-max-age): "+
			"a copy of a command that arrives more than %s after the original succeeded (one that waited out a paused project or an outage in %s, "+
			"or a late republish) runs again; raise --idempotency-ttl to %s, or lower --commands-max-age",
			short(t.IdempotencyTTL), short(t.CommandsMaxAge), short(t.IdempotencyTTL), t.CommandsStream, short(t.CommandsMaxAge)))
	}
	if t.ResultsMaxAge < t.IdempotencyTTL {
		warnings = append(warnings, fmt.Sprintf("results are kept %s (--results-max-age), command ids are remembered %s (--idempotency-ttl): "+
			"a duplicate that arrives after the result expired is answered without the original response, and worker status says succeeded without the result; "+
			"raise --results-max-age to %s, or lower --idempotency-ttl",
			short(t.ResultsMaxAge), short(t.IdempotencyTTL), short(t.IdempotencyTTL)))
	}
	return warnings, errors.Join(errs...)
}

// short writes a duration the way the flags take it: 168h, 10m, 90s.
func short(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d != 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Provision creates the three streams and the durable consumer of v1
// subjects, or updates them to this configuration (each project's durable
// consumer is ProvisionProject's). It never deletes a stream, so an existing
// deployment keeps its data; a change JetStream cannot make in place (such
// as the commands stream's retention policy) is reported, not forced.
func Provision(ctx context.Context, js jetstream.JetStream, t Topology) (jetstream.Consumer, error) {
	t = t.WithDefaults()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        t.CommandsStream,
			Description: "Chat commands waiting to be executed (work queue: a command leaves the stream when the worker acknowledges it).",
			Subjects:    []string{t.Subjects.CommandsFilter(), t.Subjects.SchedulesFilter()},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      t.CommandsMaxAge,
			MaxMsgSize:  MaxCommandMsgSize,
			Duplicates:  t.DuplicateWindow,
			// One durable per project served (ProvisionProject), besides the
			// v1 one and the tools': above the server's default of 1,000
			// consumers a stream.
			MaxConsumers: CommandsMaxConsumers,
			// Scheduled commands (schedules.go).
			AllowMsgSchedules: true,
			AllowMsgTTL:       true,
			AllowRollup:       true,
		},
		{
			Name:        t.ResultsStream,
			Description: "One result per successful chat command.",
			Subjects:    []string{t.Subjects.ResultsFilter()},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      t.ResultsMaxAge,
			Duplicates:  t.DuplicateWindow,
		},
		{
			Name:        t.DeadLettersStream,
			Description: "Chat commands that cannot succeed, with the reason; replay them with `worker dlq replay`.",
			Subjects:    []string{t.Subjects.DeadLettersFilter()},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      t.DeadLettersMaxAge,
			MaxMsgs:     t.DeadLettersMaxMsgs,
			MaxBytes:    t.DeadLettersMaxBytes,
			Duplicates:  t.DuplicateWindow,
		},
	}
	for _, cfg := range streams {
		cfg.Storage = t.Storage
		cfg.Replicas = t.Replicas
		cfg.Discard = jetstream.DiscardOld
		// Direct gets serve the per-chat order check (see isHead for when
		// a replica's answer is trusted) and the dead-letter tools from any
		// replica, without the JetStream API's overhead.
		cfg.AllowDirect = true
		st, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", cfg.Name, explain(err))
		}
		if err := checkSchedules(cfg, st.CachedInfo()); err != nil {
			return nil, err
		}
	}
	// The v1 durable keeps its name, so an upgrade keeps its pending
	// state; its filter narrows to v1 subjects (from the whole commands
	// filter of earlier releases) before any project's durable exists: a
	// work queue refuses two consumers whose filters overlap.
	return createConsumer(ctx, js, t, t.Durable, t.Subjects.For("").ConsumeFilter(), "chat command worker: v1 subjects")
}

// ProjectDurable is the name of the durable consumer of the v2 commands of
// the project named name: the v1 durable's name, "-p-" and the project's
// name (valid in a durable's name: no dots, no wildcards, no spaces).
func ProjectDurable(t Topology, name string) string {
	return t.WithDefaults().Durable + "-p-" + name
}

// ProvisionProject creates, or updates to t, the durable consumer of the
// project named name (contract v2): its own MaxAckPending, so that its
// commands are delivered whatever other projects' backlogs. Provision must
// have run first. The worker calls it for every project it serves, at start
// and when one is added to its configuration.
func ProvisionProject(ctx context.Context, js jetstream.JetStream, t Topology, name string) (jetstream.Consumer, error) {
	if err := contract.CheckProjectName(name); err != nil {
		return nil, err
	}
	t = t.WithDefaults()
	return createConsumer(ctx, js, t, ProjectDurable(t, name), t.Subjects.For(name).ConsumeFilter(), "chat command worker: project "+name)
}

func createConsumer(ctx context.Context, js jetstream.JetStream, t Topology, durable, filter, description string) (jetstream.Consumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, t.CommandsStream, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   description,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       t.AckWait,
		MaxDeliver:    t.MaxDeliver,
		MaxAckPending: t.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      t.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s on %s: %w", durable, t.CommandsStream, explain(err))
	}
	return cons, nil
}

// explain adds what an operator can do about the common failures.
func explain(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%w (enable JetStream on the NATS server: `nats-server -js`)", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (is the NATS server reachable and JetStream available?)", err)
	}
	return err
}
