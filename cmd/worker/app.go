package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/export"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/identity"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/version"
	"github.com/chatworker/worker/project"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// workerFlags configure a running worker (worker run; worker demo fills
// them itself).
type workerFlags struct {
	nats   natsFlags
	log    logFlags
	apiURL string
	consumerFlags
	httpAddr     string
	dataDir      string
	embeddedAddr string
	idemBucket   string
	statesBucket string
	idemTTL      time.Duration
	idemLease    time.Duration
	grace        time.Duration
	perChatOrder bool
	claimless    bool
	outage       project.OutageRule
	exportBucket string
	retry        consumer.RetryPolicy
	// defaultProject names the default project (GOSQUARED_SITE_TOKEN and
	// GOSQUARED_API_KEY) in v2 subjects, metrics and project states.
	defaultProject string
	// projects are the other projects, by name, with their keys (from
	// GOSQUARED_PROJECTS, never a flag).
	projects map[string]chat.Credentials
}

func (f *workerFlags) register(fs *flagSet) {
	f.nats.register(fs)
	f.log.register(fs)
	fs.String(&f.apiURL, "chat-api-url", "CHAT_API_URL", chat.DefaultBaseURL, "Chat API base URL")
	f.consumerFlags.register(fs)
	fs.String(&f.httpAddr, "http-addr", "WORKER_HTTP_ADDR", ":8080", "address for /metrics, /healthz and /readyz (empty: off)")
	fs.String(&f.dataDir, "data-dir", "WORKER_DATA_DIR", "./data", "data directory of the embedded NATS server")
	fs.String(&f.embeddedAddr, "embedded-listen", "WORKER_EMBEDDED_LISTEN", "127.0.0.1:4222", "where the embedded NATS server listens")
	fs.String(&f.idemBucket, "idempotency-bucket", "WORKER_IDEMPOTENCY_BUCKET", idempotency.DefaultBucket, "key-value bucket of the idempotency store")
	fs.String(&f.defaultProject, "default-project", "WORKER_DEFAULT_PROJECT", contract.DefaultProject, "the name of the default project (GOSQUARED_SITE_TOKEN): v2 commands name it in their subjects (chat.commands.NAME.TYPE.CHAT), metrics and pauses show it")
	fs.String(&f.statesBucket, "projects-bucket", "WORKER_PROJECTS_BUCKET", project.DefaultBucket, "key-value bucket of the project states (pauses)")
	fs.Duration(&f.idemTTL, "idempotency-ttl", "WORKER_IDEMPOTENCY_TTL", idempotency.DefaultTTL, "how long a succeeded command id is remembered")
	fs.Duration(&f.idemLease, "idempotency-lease", "WORKER_IDEMPOTENCY_LEASE", idempotency.DefaultLease, "how long a claim on a command id holds off other workers")
	fs.Duration(&f.grace, "shutdown-grace", "WORKER_SHUTDOWN_GRACE", consumer.DefaultShutdownGrace, "on SIGTERM, how long in-flight commands may take to finish")
	fs.String(&f.exportBucket, "export-bucket", "WORKER_EXPORT_BUCKET", "", "Object Store bucket for export commands (empty: export commands are refused)")
	fs.Bool(&f.perChatOrder, "per-chat-order", "WORKER_PER_CHAT_ORDER", true, "execute each chat's commands in publish order (false: one fewer JetStream round trip per command, no order)")
	fs.Bool(&f.claimless, "claimless-first-delivery", "WORKER_CLAIMLESS_FIRST_DELIVERY", false, "with per-chat order, run a command's first delivery without claiming its id first: a read instead of a write, but the result waits for the outcome's record; measured slower on one server and on a cluster of three (false: every delivery claims)")
	fs.Int(&f.outage.Commands, "outage-commands", "WORKER_OUTAGE_COMMANDS", project.DefaultOutageCommands, "a project pauses for an outage when this many different commands fail for no fault of their own (5xx, timeouts, refused connections) ...")
	fs.Duration(&f.outage.Window, "outage-window", "WORKER_OUTAGE_WINDOW", project.DefaultOutageWindow, "... within this long, with no call of the project answered in between")
	fs.check(func() []error {
		if err := contract.CheckProjectName(f.defaultProject); err != nil {
			return []error{fmt.Errorf("--default-project: %v", err)}
		}
		return nil
	})
	fs.check(func() []error {
		if f.outage.Commands < 1 || f.outage.Window <= 0 {
			return []error{fmt.Errorf("--outage-commands %d and --outage-window %s: want at least 1 command and a positive window", f.outage.Commands, f.outage.Window)}
		}
		return nil
	})
	fs.Int(&f.retry.MaxAttempts, "retry-max-attempts", "WORKER_RETRY_MAX_ATTEMPTS", consumer.DefaultMaxAttempts, "API calls per command before it is dead-lettered as exhausted")
	fs.Duration(&f.retry.MaxElapsed, "retry-max-elapsed", "WORKER_RETRY_MAX_ELAPSED", consumer.DefaultMaxElapsed, "time from a command's first attempt after which it is dead-lettered as exhausted")
	fs.Duration(&f.retry.InitialInterval, "retry-initial-interval", "WORKER_RETRY_INITIAL_INTERVAL", consumer.DefaultInitialInterval, "first retry's backoff ceiling (doubles each attempt, full jitter)")
	fs.Duration(&f.retry.MaxInterval, "retry-max-interval", "WORKER_RETRY_MAX_INTERVAL", consumer.DefaultMaxInterval, "largest backoff between attempts")
	fs.Duration(&f.retry.InProcessMax, "retry-in-process-max", "WORKER_RETRY_IN_PROCESS_MAX", consumer.DefaultInProcessMax, "longest backoff waited in-process; longer ones hand the command back with a delayed redelivery")
	fs.check(f.check)
}

// defaultWorkerFlags are the worker's settings when no flag or variable
// says otherwise (worker demo shows only a few flags of its own).
func defaultWorkerFlags() workerFlags {
	var f workerFlags
	f.register(newFlagSet("", "", io.Discard))
	return f
}

// check validates the values, one clear sentence per problem.
func (f *workerFlags) check() []error {
	var errs []error
	if f.nats.replicas < 1 || f.nats.replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1 to 5", f.nats.replicas))
	}
	if f.retry.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("--retry-max-attempts %d: want at least 1", f.retry.MaxAttempts))
	}
	errs = append(errs, f.nats.checkRetention(f.idemTTL)...)
	for name, d := range map[string]time.Duration{"--idempotency-lease": f.idemLease, "--shutdown-grace": f.grace,
		"--retry-max-elapsed": f.retry.MaxElapsed, "--retry-initial-interval": f.retry.InitialInterval, "--retry-max-interval": f.retry.MaxInterval, "--retry-in-process-max": f.retry.InProcessMax} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: want a positive duration such as 30s", name, d))
		}
	}
	if f.retry.MaxInterval < f.retry.InitialInterval {
		errs = append(errs, fmt.Errorf("--retry-max-interval %v is below --retry-initial-interval %v", f.retry.MaxInterval, f.retry.InitialInterval))
	}
	if f.httpAddr != "" {
		if _, _, err := net.SplitHostPort(f.httpAddr); err != nil {
			errs = append(errs, fmt.Errorf("--http-addr %q: want host:port such as :8080", f.httpAddr))
		}
	}
	if f.nats.url == "" {
		if _, _, err := splitHostPort(f.embeddedAddr); err != nil {
			errs = append(errs, fmt.Errorf("--embedded-listen %q: %v", f.embeddedAddr, err))
		}
	}
	return errs
}

// app is a wired worker: NATS, streams, store, client, consumer and the HTTP
// endpoints.
type app struct {
	log      *zap.Logger
	embedded *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	worker   *consumer.Worker
	reg      *prometheus.Registry
	http     *http.Server
	httpLn   net.Listener
	topo     consumer.Topology
	states   *project.Store // the project states every replica shares
	fleet    *fleet.Fleet   // the live replicas, who share each project's budget
	oncall   *consumer.OnCallMetrics
	// stopTracing flushes spans; it runs after NATS has drained, so the
	// records of the last commands are in the last spans.
	stopTracing func()
}

// newApp wires a worker. creds are the Chat API credentials; the API's
// address is f's --chat-api-url (the demo sets it to its simulator), and
// embedded, when not nil, is the NATS server to connect to in process.
func newApp(ctx context.Context, f *workerFlags, log *zap.Logger, creds chat.Credentials, embedded *server.Server) (*app, error) {
	a := &app{log: log, embedded: embedded, reg: prometheus.NewRegistry(), topo: f.nats.topology()}
	f.consumerFlags.apply(&a.topo)
	a.topo.IdempotencyTTL = f.idemTTL
	var metrics *consumer.Metrics
	metrics, a.oncall = registerMetrics(a.reg, func() bool { return a.worker != nil && a.ready(context.Background()) == nil })

	name := identity.Name()
	var err error
	a.nc, a.js, err = f.nats.connect(ctx, "chatworker "+name, embedded, log)
	if err != nil {
		return nil, err
	}
	// The fleet record carries the budgets the executor, made below, knows.
	var (
		budgets atomic.Pointer[execute.Executor]
		parts   jetStreamParts
	)
	if err := f.nats.untilJetStream(ctx, log, func() (err error) {
		parts, err = a.setUpJetStream(ctx, f, name, metrics, &budgets)
		return err
	}); err != nil {
		a.close()
		return nil, err
	}
	cons, store, caps := parts.cons, parts.store, parts.caps
	tp, stopTracing, err := startTracing(ctx, log)
	if err != nil {
		a.close()
		return nil, err
	}
	a.stopTracing = stopTracing
	chatOpts := []chat.Option{
		chat.WithBaseURL(f.apiURL),
		chat.WithCredentials(creds),
		chat.WithMaxConnsPerHost(f.concurrency),
		chat.WithObserver(metrics),
		chat.WithShare(a.fleet.Share),
	}
	if tp.Enabled() {
		chatOpts = append(chatOpts, chat.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) }))
	}
	client, err := chat.New(chatOpts...)
	if err != nil {
		a.close()
		return nil, usageError{fmt.Errorf("chat API client: %w", err)}
	}
	keys := newKeys(creds, f.defaultProject, f.projects)
	keys.onError = func(err error) {
		log.Error("the projects file changed but cannot be read: the projects stay as they were", zap.Error(err))
	}
	exec := &execute.Executor{Client: client, SiteToken: creds.SiteToken, Default: f.defaultProject, Projects: f.projects, Keys: keys}
	budgets.Store(exec)
	if f.exportBucket != "" {
		sink, err := export.OpenObjectStore(ctx, a.js, f.exportBucket, f.nats.replicas)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("export bucket: %w", err)
		}
		exec.Exporter = &export.Exporter{Client: client, Sink: sink}
	}
	a.worker, err = consumer.New(a.js, cons, exec, store, consumer.Config{
		Topology: a.topo, Retry: f.retry, Concurrency: f.concurrency, ShutdownGrace: f.grace,
		Name: name, Logger: log, Metrics: metrics, Unordered: !f.perChatOrder, Claimless: f.claimless, Tracer: tracerIfOn(tp),
		Projects: exec, ProjectMetrics: a.oncall, Latency: a.oncall, ProjectStates: a.states, Outage: f.outage, Caps: caps,
	})
	if err != nil {
		a.close()
		return nil, usageError{fmt.Errorf("worker configuration: %w", err)}
	}
	if f.httpAddr != "" {
		if err := a.serveHTTP(f.httpAddr); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// jetStreamParts are what setUpJetStream makes besides the app's own fields.
type jetStreamParts struct {
	cons  jetstream.Consumer
	store *idempotency.KV
	caps  *consumer.ChatCaps
}

// setUpJetStream provisions the streams and the consumer, opens the
// buckets and joins the fleet: every step is idempotent, so
// untilJetStream can run it again while JetStream does not answer yet.
func (a *app) setUpJetStream(ctx context.Context, f *workerFlags, name string, metrics *consumer.Metrics, budgets *atomic.Pointer[execute.Executor]) (jetStreamParts, error) {
	var p jetStreamParts
	// The streams are shared: a worker started with other retention flags
	// keeps the streams' retention and says so; `worker provision` changes
	// it for everyone.
	topo, kept, err := consumer.KeepRetention(ctx, a.js, a.topo)
	if err != nil {
		return p, err
	}
	for _, c := range kept {
		a.log.Warn("a retention flag differs from the stream's setting, which is kept: run `worker provision` with the flag to change it for every replica",
			zap.String("stream", c.Stream), zap.String("setting", c.Setting), zap.String("flag", c.Flag), zap.String("stream_value", c.From), zap.String("flag_value", c.To))
	}
	a.topo = topo
	if p.cons, err = consumer.Provision(ctx, a.js, a.topo); err != nil {
		return p, err
	}
	if kv, err := a.js.KeyValue(ctx, f.idemBucket); err == nil {
		if st, err := kv.Status(ctx); err == nil && st.TTL() != a.topo.IdempotencyTTL {
			a.log.Warn("a retention flag differs from the bucket's setting, which is kept: run `worker provision` with the flag to change it for every replica",
				zap.String("bucket", f.idemBucket), zap.String("flag", "--idempotency-ttl"), zap.String("bucket_value", st.TTL().String()), zap.String("flag_value", a.topo.IdempotencyTTL.String()))
			a.topo.IdempotencyTTL = st.TTL()
		}
	}
	logRetention(a.topo, a.log)
	p.store, err = idempotency.Open(ctx, a.js, idempotency.Config{
		Bucket: f.idemBucket, TTL: a.topo.IdempotencyTTL, Lease: f.idemLease, Replicas: f.nats.replicas, Owner: name,
	})
	if err != nil {
		return p, fmt.Errorf("idempotency store: %w", err)
	}
	if a.states, err = project.Open(ctx, a.js, project.Config{Bucket: f.statesBucket, Replicas: f.nats.replicas}); err != nil {
		return p, err
	}
	if p.caps, err = consumer.OpenChatCaps(ctx, a.js, consumer.CapsConfig{Replicas: f.nats.replicas}); err != nil {
		return p, err
	}
	a.fleet, err = fleet.Join(ctx, a.js, fleet.Config{Replicas: f.nats.replicas, Budgets: func() map[string]chat.Budget {
		if e := budgets.Load(); e != nil {
			return e.Budgets()
		}
		return nil
	}},
		fleet.Member{Name: name, Version: version.Get().Version, Concurrency: f.concurrency}, metrics.InFlight, a.log)
	return p, err
}

// run consumes until ctx is cancelled, then drains and closes everything.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	v := version.Get()
	a.log.Info("worker started", zap.String("version", v.Version), zap.String("commit", v.Commit), zap.String("go_version", v.GoVersion),
		zap.String("stream", a.topo.WithDefaults().CommandsStream))
	backlogCtx, stopBacklog := context.WithCancel(ctx)
	backlogDone := make(chan struct{})
	go func() {
		defer close(backlogDone)
		consumer.WatchBacklog(backlogCtx, a.js, a.topo, a.oncall, 10*time.Second, a.log)
	}()
	err := a.worker.Run(ctx)
	a.leaveFleet()
	stopBacklog()
	<-backlogDone
	a.log.Info("worker stopped")
	return err
}

// registerMetrics registers everything /metrics serves on reg: the Go and
// process collectors, the build, readiness, the consumer's metrics and the
// on-call metrics the shipped alerts use. The monitoring test lists what it
// registers, so keep every worker metric here.
func registerMetrics(reg prometheus.Registerer, ready func() bool) (*consumer.Metrics, *consumer.OnCallMetrics) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.Get().Collector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "chatworker", Name: "ready",
			Help: "1 while /readyz answers ready (connected to NATS, commands stream present, not draining, the default project checked and not paused), else 0."},
			func() float64 {
				if ready() {
					return 1
				}
				return 0
			}))
	return consumer.NewMetrics(reg), consumer.NewOnCallMetrics(reg)
}

// leaveFleet removes this replica's record, so the others take its share of
// the budgets at once.
func (a *app) leaveFleet() {
	if a.fleet == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.fleet.Leave(ctx)
	a.fleet = nil
}

func (a *app) close() {
	a.leaveFleet()
	if a.http != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.http.Shutdown(shutdownCtx)
		cancel()
	}
	if a.nc != nil {
		// Drain flushes pending acks and publishes before closing.
		closed := make(chan struct{})
		a.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err := a.nc.Drain(); err == nil {
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
			}
		}
		a.nc.Close()
	}
	if a.stopTracing != nil {
		a.stopTracing()
	}
	if a.embedded != nil {
		a.embedded.Shutdown()
		a.embedded.WaitForShutdown()
	}
}

func (a *app) serveHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http-addr %s: %w (choose another address, or pass --http-addr '' to turn the endpoints off)", addr, err)
	}
	a.httpLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP endpoints stopped", zap.Error(err))
		}
	}()
	a.log.Info("HTTP endpoints listening", zap.String("addr", ln.Addr().String()))
	return nil
}

// ready: connected to NATS, the commands stream present, not draining, the
// default project's credentials checked and not refused.
func (a *app) ready(ctx context.Context) error {
	if why := a.worker.NotReady(); why != "" {
		return errors.New(why)
	}
	switch {
	case !a.nc.IsConnected():
		return errors.New("not connected to NATS")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := a.js.Stream(ctx, a.topo.WithDefaults().CommandsStream); err != nil {
		return fmt.Errorf("commands stream: %w", err)
	}
	return nil
}
