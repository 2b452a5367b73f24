package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// natsFlags are the flags of every subcommand that talks to NATS.
type natsFlags struct {
	url      string
	creds    string
	nkey     string
	user     string
	tlsCA    string
	tlsCert  string
	tlsKey   string
	prefix   string
	replicas int

	// connectTimeout is how long run and provision wait for a server that
	// is not up yet (pods start in any order); waitOut is where they say
	// so when they have no logger.
	connectTimeout time.Duration
	waitOut        io.Writer

	// Retention of the streams (see consumer.Topology and
	// docs/retention.md); the idempotency TTL is the subcommand's own.
	commandsMaxAge  time.Duration
	resultsMaxAge   time.Duration
	duplicateWindow time.Duration
	dlqMaxAge       time.Duration
	dlqMaxMsgs      int
	dlqMaxBytes     int
}

// register registers the flags of the subcommands that create the
// streams: the connection, replicas and retention.
func (n *natsFlags) register(fs *flagSet) {
	n.registerConn(fs)
	fs.Duration(&n.connectTimeout, "nats-connect-timeout", "WORKER_NATS_CONNECT_TIMEOUT", time.Minute, "how long to wait, retrying, for a NATS server that is not up yet, or whose JetStream does not answer yet (0: try once)")
	n.waitOut = fs.out
	n.registerReplicas(fs)
	fs.Duration(&n.commandsMaxAge, "commands-max-age", "WORKER_COMMANDS_MAX_AGE", consumer.DefaultCommandsMaxAge, "how long CHAT_COMMANDS keeps a command not yet acknowledged (a scheduled one waits for its time regardless)")
	fs.Duration(&n.resultsMaxAge, "results-max-age", "WORKER_RESULTS_MAX_AGE", consumer.DefaultResultsMaxAge, "how long CHAT_RESULTS keeps a result (keep it at least --idempotency-ttl)")
	fs.Duration(&n.duplicateWindow, "duplicate-window", "WORKER_DUPLICATE_WINDOW", consumer.DefaultDuplicateWindow, "how long each stream drops a message whose Nats-Msg-Id it already stored (shorter than --idempotency-ttl)")
	fs.Duration(&n.dlqMaxAge, "dlq-max-age", "WORKER_DLQ_MAX_AGE", consumer.DefaultDeadLettersMaxAge, "how long CHAT_DLQ keeps a dead letter (longer than --commands-max-age)")
	fs.Int(&n.dlqMaxMsgs, "dlq-max-msgs", "WORKER_DLQ_MAX_MSGS", -1, "most dead letters CHAT_DLQ keeps, the oldest dropped first (-1: no limit)")
	fs.Int(&n.dlqMaxBytes, "dlq-max-bytes", "WORKER_DLQ_MAX_BYTES", 1<<30, "most bytes CHAT_DLQ keeps, the oldest dropped first (-1: no limit)")
}

// registerReplicas registers --replicas, for the subcommands that create
// streams or buckets.
func (n *natsFlags) registerReplicas(fs *flagSet) {
	fs.Int(&n.replicas, "replicas", "WORKER_STREAM_REPLICAS", 1, "stream and bucket replicas (3 on a NATS cluster)")
}

// registerConn registers only what connecting and naming subjects need:
// the flags of subcommands that publish or read but never provision.
func (n *natsFlags) registerConn(fs *flagSet) {
	n.registerServer(fs)
	fs.String(&n.prefix, "subject-prefix", "WORKER_SUBJECT_PREFIX", contract.DefaultPrefix, "first token of every subject")
}

// registerServer registers where the NATS server is and how to log in.
func (n *natsFlags) registerServer(fs *flagSet) {
	fs.String(&n.url, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated")
	fs.String(&n.creds, "nats-creds", "NATS_CREDS", "", "NATS credentials file (JWT + NKey seed)")
	fs.String(&n.nkey, "nats-nkey", "NATS_NKEY", "", "NATS NKey seed file")
	fs.String(&n.user, "nats-user", "NATS_USER", "", "NATS user name (the password comes from NATS_PASSWORD or NATS_PASSWORD_FILE)")
	fs.String(&n.tlsCA, "tls-ca", "NATS_TLS_CA", "", "CA certificate file to verify the NATS server")
	fs.String(&n.tlsCert, "tls-cert", "NATS_TLS_CERT", "", "client certificate file for NATS (with --tls-key)")
	fs.String(&n.tlsKey, "tls-key", "NATS_TLS_KEY", "", "client key file for NATS (with --tls-cert)")
}

func (n *natsFlags) subjects() contract.Subjects { return contract.Subjects{Prefix: n.prefix} }

// topology is the streams' configuration in the flags; the subcommands
// that provision set its IdempotencyTTL from their own flag.
func (n *natsFlags) topology() consumer.Topology {
	return consumer.Topology{Subjects: n.subjects(), Replicas: n.replicas,
		CommandsMaxAge: n.commandsMaxAge, ResultsMaxAge: n.resultsMaxAge, DuplicateWindow: n.duplicateWindow,
		DeadLettersMaxAge: n.dlqMaxAge, DeadLettersMaxMsgs: int64(n.dlqMaxMsgs), DeadLettersMaxBytes: int64(n.dlqMaxBytes)}
}

// checkRetention validates the retention flags, each alone and all
// together with the idempotency TTL (the policy is
// consumer.Topology.RetentionPolicy), one sentence per problem.
func (n *natsFlags) checkRetention(idemTTL time.Duration) []error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--idempotency-ttl", idemTTL}, {"--commands-max-age", n.commandsMaxAge}, {"--results-max-age", n.resultsMaxAge},
		{"--duplicate-window", n.duplicateWindow}, {"--dlq-max-age", n.dlqMaxAge}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: want a positive duration such as 168h", d.flag, d.v))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	t := n.topology()
	t.IdempotencyTTL = idemTTL
	if _, refused := t.RetentionPolicy(); refused != nil {
		errs = append(errs, refused)
	}
	return errs
}

// logRetention logs, at start, each combination of the retention flags
// that weakens the idempotency guarantee.
func logRetention(t consumer.Topology, log *zap.Logger) {
	warnings, _ := t.RetentionPolicy()
	for _, w := range warnings {
		log.Warn("retention weakens the idempotency guarantee", zap.String("why", w))
	}
}

// options turns the flags and secret variables into connection options.
func (n *natsFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if n.creds != "" {
		opts = append(opts, nats.UserCredentials(n.creds))
	}
	if n.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(n.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey: %w", err)
		}
		opts = append(opts, o)
	}
	password, err := secret("NATS_PASSWORD")
	if err != nil {
		return nil, err
	}
	if n.user != "" {
		opts = append(opts, nats.UserInfo(n.user, password))
	} else if password != "" {
		return nil, errors.New("NATS_PASSWORD is set but --nats-user (NATS_USER) is not: set both")
	}
	token, err := secret("NATS_TOKEN")
	if err != nil {
		return nil, err
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	if (n.tlsCert == "") != (n.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together: set both or neither")
	}
	if n.tlsCert != "" {
		opts = append(opts, nats.ClientCert(n.tlsCert, n.tlsKey))
	}
	if n.tlsCA != "" {
		opts = append(opts, nats.RootCAs(n.tlsCA))
	}
	return opts, nil
}

// connect connects to the NATS server in the flags, or to embedded when it
// is not nil (in-process, no TCP hop).
func (n *natsFlags) connect(ctx context.Context, name string, embedded *server.Server, log *zap.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := n.options()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("reconnected to NATS", zap.String("url", c.ConnectedUrlRedacted())) }),
		// Asynchronous errors (a subscription that dropped messages as a slow
		// consumer, a permissions violation) are otherwise silent.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				refusedIn(ctx).add(n, err)
			}
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Warn("NATS reported an error", fields...)
		}),
	)
	opts = append(opts, extra...)
	url := n.url
	if embedded != nil {
		opts = append(opts, nats.InProcessServer(embedded))
		url = embedded.ClientURL()
	}
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := n.dial(ctx, url, embedded == nil, log, opts)
	if err != nil {
		return nil, nil, err
	}
	// The worker stores results with asynchronous publishes; a PubAck that
	// never comes must not keep its entry in the client forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// dial connects to url. When waiting is allowed and --nats-connect-timeout
// is set, a server that does not answer yet is tried again until the
// timeout, each failure said in one line; a server that answers and refuses
// (credentials, TLS) is not.
func (n *natsFlags) dial(ctx context.Context, url string, wait bool, log *zap.Logger, opts []nats.Option) (*nats.Conn, error) {
	start := time.Now()
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			if attempt > 1 {
				log.Info("connected to NATS", zap.String("url", nc.ConnectedUrlRedacted()), zap.Int("attempts", attempt))
			}
			return nc, nil
		}
		if !wait || n.connectTimeout <= 0 || !errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("connect to NATS at %s: %w (is the server up? `worker run` without --nats-url starts one; or set NATS_URL)", redactURL(url), err)
		}
		left := n.connectTimeout - time.Since(start)
		if left <= 0 {
			return nil, fmt.Errorf("connect to NATS at %s: no answer within %v (--nats-connect-timeout): %w; check the URL and that the server is running", redactURL(url), n.connectTimeout, err)
		}
		pause = min(pause, left)
		if log.Core().Enabled(zap.WarnLevel) {
			log.Warn("NATS is not reachable yet; retrying", zap.String("url", redactURL(url)), zap.Int("attempt", attempt),
				zap.Duration("retry_in", pause), zap.Duration("gives_up_in", left.Round(time.Second)), zap.Error(err))
		} else if n.waitOut != nil {
			fmt.Fprintf(n.waitOut, "NATS at %s is not reachable yet (%v); retrying in %v, giving up in %v\n", redactURL(url), err, pause, left.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s: gave up waiting: %w", redactURL(url), ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// untilJetStream runs setup, and again while JetStream does not answer yet,
// for up to --nats-connect-timeout, as dial waits for the server: a NATS
// cluster whose pods start with the workers' answers nothing, or
// "temporarily unavailable", until it has elected its JetStream leader.
// Any other error ends it at once.
func (n *natsFlags) untilJetStream(ctx context.Context, log *zap.Logger, setup func() error) error {
	start := time.Now()
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := setup()
		if err == nil || n.connectTimeout <= 0 || !jetStreamNotReady(err) {
			return err
		}
		left := n.connectTimeout - time.Since(start)
		if left <= 0 {
			hint := ""
			if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
				hint = "; a server without JetStream answers so too: enable it (`nats-server -js`)"
			}
			return fmt.Errorf("JetStream did not answer within %v (--nats-connect-timeout): %w%s", n.connectTimeout, err, hint)
		}
		pause = min(pause, left)
		if log.Core().Enabled(zap.WarnLevel) {
			log.Warn("JetStream is not answering yet; retrying", zap.Int("attempt", attempt),
				zap.Duration("retry_in", pause), zap.Duration("gives_up_in", left.Round(time.Second)), zap.Error(err))
		} else if n.waitOut != nil {
			fmt.Fprintf(n.waitOut, "JetStream is not answering yet (%v); retrying in %v, giving up in %v\n", err, pause, left.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting for JetStream: %v)", err, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// jetStreamNotReady reports whether err says JetStream has not answered
// yet, rather than refused: no answer in time, no responder for its API
// (which is also how a server without JetStream answers: that one is
// waited for too, and the error then says to enable it), or a cluster
// without its leader or its peers.
func jetStreamNotReady(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return false // an account without JetStream does not get it by waiting
		case jetstream.JSErrCodeJetStreamNotEnabled, jsErrCodeNoSuitablePeers, jsErrCodeClusterUnavailable:
			return true
		}
		return api.Code == http.StatusServiceUnavailable
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

// JetStream's answers while a cluster forms (nats-server's
// JSClusterNoPeersErrF and JSClusterNotAvailErr), which the client does not
// name.
const (
	jsErrCodeNoSuitablePeers    jetstream.ErrorCode = 10005
	jsErrCodeClusterUnavailable jetstream.ErrorCode = 10008
)

// redactURL hides user information (passwords, tokens) in NATS URLs.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// startEmbedded starts a JetStream server in this process. Port -1 picks a
// free port.
func startEmbedded(host string, port int, dataDir string, log *zap.Logger) (*server.Server, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w (choose another with --data-dir)", err)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "chatworker-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS server did not start on %s:%d (is the port in use? pass --nats-url to use a running server)", host, port)
	}
	log.Info("embedded NATS server started", zap.String("url", s.ClientURL()), zap.String("data_dir", dir))
	return s, nil
}

// refusals collects the subjects the NATS server refused to the users of
// one run's connections. The server reports a permissions violation only
// on the connection's error handler; the request that caused it just goes
// unanswered and ends with its deadline, so without this a missing
// permission reads as "context deadline exceeded".
type refusals struct {
	mu   sync.Mutex
	list []refusal
}

type refusal struct {
	user, what, subject string // what: "publish to" or "subscribe to"
	meant               string // the shipped user for the job, or ""
	job                 string
}

type refusalsKey struct{}

// withRefusals gives a run somewhere to collect refusals: run reports them
// with its error (explain).
func withRefusals(ctx context.Context) (context.Context, *refusals) {
	r := &refusals{}
	return context.WithValue(ctx, refusalsKey{}, r), r
}

// refusedIn is the run's collector; nil (which add ignores) outside run.
func refusedIn(ctx context.Context) *refusals {
	r, _ := ctx.Value(refusalsKey{}).(*refusals)
	return r
}

var violation = regexp.MustCompile(`Permissions Violation for (Publish|Subscription) to "?([^"\s]+)"?`)

func (r *refusals) add(n *natsFlags, err error) {
	if r == nil {
		return
	}
	m := violation.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	f := refusal{what: "publish to", subject: m[2], user: "this NATS user"}
	if m[1] == "Subscription" {
		f.what = "subscribe to"
	}
	switch {
	case n.user != "":
		f.user = fmt.Sprintf("NATS user %q", n.user)
	case n.creds != "":
		f.user = "the user of " + n.creds
	}
	f.meant, f.job = meantFor(f.subject, n.prefix)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.list {
		if g.subject == f.subject && g.what == f.what {
			return
		}
	}
	r.list = append(r.list, f)
}

// meantFor names the user of deploy/nats/worker-permissions.conf whose job
// needs subject, for the subjects a wrong user meets first.
func meantFor(subject, prefix string) (user, job string) {
	has := func(parts ...string) bool {
		for _, p := range parts {
			if strings.Contains(subject, p) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(subject, prefix+".commands.") || strings.HasPrefix(subject, prefix+".schedules."):
		return "app", "publishing commands"
	case has("EXPORTS", "EXPORT_CHECKPOINTS"):
		return "worker", "exporting conversations (worker export, the export CronJob)"
	case has(".MSG.DELETE.", ".PURGE."):
		return "operator", "deleting or purging messages (dlq replay and purge, cancel, schedules ls)"
	case strings.HasPrefix(subject, "$JS.API.CONSUMER.") && has(".CHAT_RESULTS", ".CHAT_DLQ"):
		return "app", "reading results and dead letters (send --wait, status, dlq ls)"
	}
	return "", ""
}

// explain reports the refusals with the error they caused: the error alone
// is most often a deadline. A refusal is not a timeout, so an exit status
// saying so is dropped.
func (r *refusals) explain(err error) error {
	if err == nil || r == nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == 0 {
		return err
	}
	var e exitError
	if errors.As(err, &e) {
		err = e.err
	}
	var b strings.Builder
	for i, f := range r.list {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "the NATS server refused %s to %s %q (Permissions Violation)", f.user, f.what, f.subject)
		if f.meant != "" {
			fmt.Fprintf(&b, ": %s is the %q user's job in deploy/nats/worker-permissions.conf", f.job, f.meant)
		} else {
			b.WriteString(": see deploy/nats/worker-permissions.conf for the user whose permissions allow it")
		}
	}
	return fmt.Errorf("%s. The command failed with: %w", b.String(), err)
}
