package consumer

import (
	"time"

	"github.com/chatworker/worker/project"
	"github.com/prometheus/client_golang/prometheus"
)

// OnCallMetrics are the metrics the shipped alerts and dashboard are built on
// (deploy/k8s/components/monitoring). Their names are part of what operators
// depend on: renaming one breaks the alerts, and the test beside the rules
// fails. A nil *OnCallMetrics records nothing.
type OnCallMetrics struct {
	// OldestCommandAge and DeadLettersStored are read from the streams by
	// WatchBacklog.
	OldestCommandAge  prometheus.Gauge
	DeadLettersStored prometheus.Gauge
	SchedulesPending  prometheus.Gauge
	// UnservedCommands, by project, is read from the stream by WatchBacklog.
	UnservedCommands *prometheus.GaugeVec
	unservedShown    map[string]bool // the project labels set last (WatchBacklog's alone)

	commandLatency *prometheus.HistogramVec
	projectPaused  *prometheus.GaugeVec
	projectState   *prometheus.GaugeVec
	projectWait    *prometheus.HistogramVec
}

// NewOnCallMetrics creates the on-call metrics and registers them with reg.
func NewOnCallMetrics(reg prometheus.Registerer) *OnCallMetrics {
	const ns = "chatworker"
	m := &OnCallMetrics{
		OldestCommandAge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "oldest_command_age_seconds",
			Help: "Age of the oldest command still in the commands stream (waiting or being handled); 0 when none is. A scheduled command counts from when it fires, not from when it was scheduled."}),
		SchedulesPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "schedules_pending",
			Help: "Scheduled commands that have not fired yet (recurring ones count once)."}),
		UnservedCommands: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "unserved_commands",
			Help: "v2 commands waiting in the commands stream for a project no worker consumes (no worker has it in its projects); they run once a worker is configured for it. At most 50 projects by name, the rest as project=\"_other\"."}, []string{"project"}),
		DeadLettersStored: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "dead_letters_stored",
			Help: "Dead letters held in the dead-letter stream."}),
		// Buckets from 5 ms (the worker's own overhead) to about 45 min
		// (a command retried across deliveries up to its retry budget).
		commandLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "command_latency_seconds",
			Help:    "Time from a command's publish (its stream timestamp) to its result or dead letter being stored, by type and outcome (result or dead_letter).",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 12)}, []string{"type", "outcome"}),
		projectPaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "project_paused",
			Help: "1 while the worker holds back a project's commands because the Chat API refused its configuration (key or base URL), else 0; project is a configured project's name."}, []string{"project"}),
		projectState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "project_state",
			Help: "1 for the state each project is in, as every replica shares it: active, paused-operator, paused-configuration or paused-outage; project is a configured project's name."}, []string{"project", "state"}),
		projectWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "project_rate_limit_wait_seconds",
			Help:    "Time calls for a project waited because of the API's rate limit; project is a configured project's name.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 12)}, []string{"project"}),
	}
	reg.MustRegister(m.OldestCommandAge, m.DeadLettersStored, m.SchedulesPending, m.UnservedCommands, m.commandLatency, m.projectPaused, m.projectState, m.projectWait)
	return m
}

// LatencyObserver records how long a command took from its publish to its
// stored outcome; *OnCallMetrics implements it (Config.Latency).
type LatencyObserver interface {
	ObserveCommandLatency(typ, outcome string, d time.Duration)
}

// ObserveCommandLatency records how long a command took from its publish to
// its stored outcome (OutcomeResult or OutcomeDeadLetter).
func (m *OnCallMetrics) ObserveCommandLatency(typ, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.commandLatency.WithLabelValues(typ, outcome).Observe(d.Seconds())
}

// SetProjectPaused records whether a project's commands are held back.
// project is a site token from the worker's allow-list, never a command's
// unchecked input, so the label's values stay bounded.
func (m *OnCallMetrics) SetProjectPaused(project string, paused bool) {
	if m == nil {
		return
	}
	v := 0.0
	if paused {
		v = 1
	}
	m.projectPaused.WithLabelValues(project).Set(v)
}

// ObserveProjectRateLimitWait records a wait imposed by a project's rate
// limit; project as for SetProjectPaused.
func (m *OnCallMetrics) ObserveProjectRateLimitWait(project string, d time.Duration) {
	if m == nil {
		return
	}
	m.projectWait.WithLabelValues(project).Observe(d.Seconds())
}

// SetProjectState records the state a project is in: 1 for its state, 0
// for the others, so that each series exists once the project is known.
func (m *OnCallMetrics) SetProjectState(st project.State) {
	if m == nil {
		return
	}
	for _, name := range project.States {
		v := 0.0
		if name == st.Name() {
			v = 1
		}
		m.projectState.WithLabelValues(st.Project, name).Set(v)
	}
}
