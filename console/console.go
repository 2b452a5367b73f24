package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Config is what a console shows and what it may do. Zero names take the
// contract's defaults.
type Config struct {
	JS                jetstream.JetStream
	Subjects          actions.Subjects
	CommandsStream    string // CHAT_COMMANDS
	DeadLettersStream string // CHAT_DLQ
	ProjectsBucket    string // project.DefaultBucket
	FleetBucket       string // fleet.DefaultBucket
	IdempotencyBucket string // contract.DefaultIdempotencyBucket
	Audit             audit.Config

	// ReadOnly refuses every action: the pages show, nothing changes.
	ReadOnly bool
	// HideContent hides what customers wrote (command content, API
	// response bodies, raw bytes) from operators who must not read it.
	HideContent bool
	Auth        Auth
	Logger      *zap.Logger
}

func (c Config) withDefaults() Config {
	if c.CommandsStream == "" {
		c.CommandsStream = contract.DefaultCommandsStream
	}
	if c.DeadLettersStream == "" {
		c.DeadLettersStream = contract.DefaultDeadLettersStream
	}
	if c.IdempotencyBucket == "" {
		c.IdempotencyBucket = contract.DefaultIdempotencyBucket
	}
	if c.Audit.Subjects == (actions.Subjects{}) {
		c.Audit.Subjects = c.Subjects
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

//go:embed templates
var templates embed.FS

// Console serves the pages. It is an http.Handler.
type Console struct {
	cfg     Config
	pages   map[string]*template.Template
	handler http.Handler

	log *audit.Log
}

// New builds a console over cfg.JS.
func New(cfg Config) (*Console, error) {
	if cfg.JS == nil {
		return nil, errors.New("console: no JetStream connection")
	}
	c := &Console{cfg: cfg.withDefaults(), pages: map[string]*template.Template{}}
	c.log = audit.New(c.cfg.JS, c.cfg.Audit)
	funcs := template.FuncMap{"ts": ts, "ago": ago, "query": query, "deref": func(t *time.Time) time.Time { return *t }}
	for _, p := range []string{"overview", "dlq", "deadletter", "purge", "schedules", "command", "projects", "audit"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templates, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /dlq", c.deadLetters)
	mux.HandleFunc("GET /dlq/purge", c.purgeConfirm)
	mux.HandleFunc("GET /dlq/{ref}", c.deadLetter)
	mux.HandleFunc("POST /dlq/replay", c.action(c.replay))
	mux.HandleFunc("POST /dlq/purge", c.action(c.purge))
	mux.HandleFunc("GET /schedules", c.schedules)
	mux.HandleFunc("POST /schedules/cancel", c.action(c.cancel))
	mux.HandleFunc("POST /schedules/run", c.action(c.runNow))
	mux.HandleFunc("GET /command", c.command)
	mux.HandleFunc("GET /projects", c.projects)
	mux.HandleFunc("POST /projects/pause", c.action(c.pause))
	mux.HandleFunc("POST /projects/resume", c.action(c.resume))
	mux.HandleFunc("GET /audit", c.auditPage)
	// Cross-site POSTs are refused before they reach a handler: a page on
	// another site cannot make an operator's browser replay or purge.
	csrf := http.NewCrossOriginProtection()
	c.handler = c.authenticate(securityHeaders(csrf.Handler(mux)))
	return c, nil
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// action refuses every change on a read-only console.
func (c *Console) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cfg.ReadOnly {
			http.Error(w, "403 forbidden: this console is read-only", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "400 bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		h(w, r)
	}
}

// record appends an operator's action; a failure is logged and said on the
// page, but the action already happened.
func (c *Console) record(r *http.Request, e audit.Entry) string {
	e.Who, e.Via = who(r), "console"
	if err := c.log.Append(r.Context(), e); err != nil {
		c.cfg.Logger.Error("console: audit entry not stored", zap.String("action", e.Action), zap.String("who", e.Who), zap.Error(err))
		return " (the audit entry could not be stored: " + err.Error() + ")"
	}
	return ""
}

// page is what every template gets.
type page struct {
	Title       string
	Nav         string
	ReadOnly    bool
	HideContent bool
	Who         string
	Msg, Err    string
	Refresh     int
	Now         time.Time
	Data        any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title string, status int, data any, err error) {
	p := page{Title: title, Nav: name, ReadOnly: c.cfg.ReadOnly, HideContent: c.cfg.HideContent, Who: who(r),
		Msg: r.URL.Query().Get("msg"), Now: time.Now().UTC(), Data: data}
	if err != nil {
		p.Err = err.Error()
	}
	if name == "overview" {
		p.Refresh = 10
	}
	var b strings.Builder
	if err := c.pages[name].Execute(&b, p); err != nil {
		c.cfg.Logger.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "500 internal error: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// done redirects after an action (POST-redirect-GET), saying what happened.
func done(w http.ResponseWriter, r *http.Request, path string, q url.Values, msg string) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("msg", msg)
	http.Redirect(w, r, path+"?"+q.Encode(), http.StatusSeeOther)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago says how long ago t was, to the second, for a quick read.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q.Encode()
}
