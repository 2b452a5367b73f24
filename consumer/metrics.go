package consumer

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus metrics. A nil *Metrics records
// nothing. It also implements chat.Observer, for the API calls.
type Metrics struct {
	receivedC   *prometheus.CounterVec
	results     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	cappedC     *prometheus.CounterVec
	retries     *prometheus.CounterVec
	inflight    prometheus.Gauge
	inflightN   atomic.Int64 // the gauge's value, for InFlight
	apiCalls    *prometheus.CounterVec
	apiLatency  *prometheus.HistogramVec
	limiterWait prometheus.Histogram
	Pending     prometheus.Gauge
	AckPending  prometheus.Gauge
	Redelivered prometheus.Gauge
	orderWaits  prometheus.Counter
	// order checks by outcome, resolved once: they count every command,
	// and the checks made again while a command waits in place
	orderAsked, orderSkipped, orderRechecked prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "chatworker"
	m := &Metrics{
		receivedC: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_received_total",
			Help: "Command messages received, by type (invalid when the type could not be read)."}, []string{"type"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_succeeded_total",
			Help: "Results published, by type and status (succeeded or duplicate)."}, []string{"type", "status"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_dead_lettered_total",
			Help: "Dead letters published, by type and class."}, []string{"type", "class"}),
		cappedC: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_capped_total",
			Help: "Send commands over their chat's frequency cap (dead letters of class capped), by project."}, []string{"project"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "command_attempts_failed_total",
			Help: "Failed API attempts, by error class."}, []string{"class"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "commands_in_flight",
			Help: "Commands being handled now."}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_calls_total",
			Help: "Chat API calls, by operation and HTTP status (0: no response)."}, []string{"op", "status"}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "api_call_duration_seconds",
			Help: "Chat API call latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"op"}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "rate_limiter_wait_seconds",
			Help: "Time calls waited for the client-side rate limiter.", Buckets: prometheus.ExponentialBuckets(0.001, 3, 12)}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_pending",
			Help: "Commands in the stream not yet delivered, summed over the worker's consumers (v1 subjects and every project's)."}),
		AckPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_ack_pending",
			Help: "Commands delivered but not yet acknowledged."}),
		Redelivered: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_redelivered",
			Help: "Commands being redelivered."}),
		orderWaits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "order_waits_total",
			Help: "Commands handed back because an earlier command of their chat was still pending after waiting in place."}),
	}
	orderChecks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "order_checks_total",
		Help: "Per-chat order checks: asked (a get on the commands stream), skipped (this worker's deliveries prove the command is its chat's head) or rechecked (a get again while the command waits in place for an earlier one)."},
		[]string{"check"})
	m.orderAsked, m.orderSkipped = orderChecks.WithLabelValues("asked"), orderChecks.WithLabelValues("skipped")
	m.orderRechecked = orderChecks.WithLabelValues("rechecked")
	reg.MustRegister(m.receivedC, m.results, m.deadLetters, m.cappedC, m.retries, m.inflight, m.apiCalls, m.apiLatency,
		m.limiterWait, m.Pending, m.AckPending, m.Redelivered, m.orderWaits, orderChecks)
	m.zero()
	return m
}

// deadLetterClasses are the classes a dead letter can have.
var deadLetterClasses = contract.DeadLetterClasses()

// zero creates the counters' series for every known label value at 0, so
// that they exist from the start: an alert on increase() or rate() over a
// counter that appears only at its first event misses that event, and a
// restarted worker's counters would vanish until then.
func (m *Metrics) zero() {
	m.receivedC.WithLabelValues("invalid")
	m.cappedC.WithLabelValues("default")
	for _, t := range contract.Types() {
		m.receivedC.WithLabelValues(string(t))
		for _, status := range []string{contract.StatusSucceeded, contract.StatusDuplicate} {
			m.results.WithLabelValues(string(t), status)
		}
		for _, class := range deadLetterClasses {
			m.deadLetters.WithLabelValues(string(t), string(class))
		}
	}
	for _, class := range []contract.Class{contract.ClassRetryable, contract.ClassPermanent, contract.ClassInternal} {
		m.retries.WithLabelValues(string(class))
	}
}

var _ chat.Observer = (*Metrics)(nil)

// APICall implements chat.Observer.
func (m *Metrics) APICall(op string, status int, d time.Duration, _ error) {
	if m == nil {
		return
	}
	m.apiCalls.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.apiLatency.WithLabelValues(op).Observe(d.Seconds())
}

// LimiterWait implements chat.Observer.
func (m *Metrics) LimiterWait(d time.Duration) {
	if m != nil {
		m.limiterWait.Observe(d.Seconds())
	}
}

func (m *Metrics) received(typ string) {
	if m != nil {
		m.receivedC.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) succeeded(typ, status string) {
	if m != nil {
		m.results.WithLabelValues(typ, status).Inc()
	}
}

func (m *Metrics) deadLettered(typ, class string) {
	if m != nil {
		if typ == "" {
			typ = "invalid"
		}
		m.deadLetters.WithLabelValues(typ, class).Inc()
	}
}

func (m *Metrics) capped(project string) {
	if m != nil {
		m.cappedC.WithLabelValues(project).Inc()
	}
}

func (m *Metrics) retried(class actions.Class) {
	if m != nil {
		m.retries.WithLabelValues(string(class)).Inc()
	}
}

func (m *Metrics) inFlight(delta float64) {
	if m != nil {
		m.inflight.Add(delta)
		m.inflightN.Add(int64(delta))
	}
}

// InFlight is the number of commands being handled now (the
// chatworker_commands_in_flight gauge), for the replica's record that
// operators see in the console.
func (m *Metrics) InFlight() int {
	if m == nil {
		return 0
	}
	return int(m.inflightN.Load())
}

func (m *Metrics) orderCheck(skipped bool) {
	switch {
	case m == nil:
	case skipped:
		m.orderSkipped.Inc()
	default:
		m.orderAsked.Inc()
	}
}

func (m *Metrics) orderRecheck() {
	if m != nil {
		m.orderRechecked.Inc()
	}
}

func (m *Metrics) orderWait() {
	if m != nil {
		m.orderWaits.Inc()
	}
}
