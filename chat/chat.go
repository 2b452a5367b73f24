package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	// The worker ships in FROM scratch images that carry no CA bundle.
	_ "golang.org/x/crypto/x509roots/fallback"
)

const (
	// DefaultBaseURL is the production endpoint of the Live Chat API.
	DefaultBaseURL = "https://api.gosquared.com/chat/v1"
	// Version is reported in the default User-Agent.
	Version = "0.1.0"
	// DefaultUserAgent follows the official SDKs' "<library>/<version>" form.
	DefaultUserAgent = "chatworker/" + Version
	// DefaultTimeout applies to a call whose context has no deadline.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxConnsPerHost sizes the keep-alive pool for worker concurrency.
	DefaultMaxConnsPerHost = 64
	// MaxBodySize caps how much of a response body is read.
	MaxBodySize = 1 << 20
	// MaxChatIDLen is the longest chat ID accepted.
	MaxChatIDLen = 256
)

// Credentials authenticate a call: the API key and the project (site token).
// Its String, GoString and Format methods redact both values, so printing
// Credentials by accident does not leak them.
type Credentials struct {
	APIKey    string
	SiteToken string
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// String returns a redacted representation.
func (c Credentials) String() string {
	return "Credentials{APIKey:" + redacted(c.APIKey) + ",SiteToken:" + redacted(c.SiteToken) + "}"
}

// GoString returns a redacted representation for %#v.
func (c Credentials) GoString() string { return "chat." + c.String() }

// Format redacts for every verb, including %+v and %q.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, c.GoString())
		return
	}
	io.WriteString(f, c.String())
}

// MarshalJSON redacts, so credentials never end up in logs or stored JSON.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"api_key": redacted(c.APIKey), "site_token": redacted(c.SiteToken)})
}

// Observer receives one event per API call and per limiter wait; the worker
// implements it with Prometheus metrics. Implementations must be safe for
// concurrent use and fast.
type Observer interface {
	// APICall reports a finished call. op is one of "send", "note",
	// "archive", "list_chats", "get_chat", "feed", "messages", "check"; status is 0
	// when no response was received.
	APICall(op string, status int, d time.Duration, err error)
	// LimiterWait reports time a call spent waiting for the rate limiter.
	LimiterWait(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) APICall(string, int, time.Duration, error) {}
func (nopObserver) LimiterWait(time.Duration)                 {}

// Client talks to the Live Chat API. It is safe for concurrent use.
type Client struct {
	baseURL   *url.URL
	http      *http.Client
	timeout   time.Duration
	userAgent string
	creds     Credentials
	observer  Observer
	warn      func(Warning)
	limiters  *limiterSet // nil when rate limiting is disabled
}

type config struct {
	baseURL    string
	httpClient *http.Client
	timeout    time.Duration
	userAgent  string
	creds      Credentials
	maxConns   int
	rateLimit  bool
	observer   Observer
	warn       func(Warning)
	wrap       func(http.RoundTripper) http.RoundTripper
	share      func() float64
}

// Option configures a Client in New. Options validate their argument.
type Option func(*config) error

// WithBaseURL sets the API base URL; it must be an absolute http or https URL.
func WithBaseURL(s string) Option {
	return func(c *config) error {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("chat: invalid base URL: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("chat: base URL must be an absolute http(s) URL")
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("chat: base URL must not carry a query, fragment or user info")
		}
		c.baseURL = s
		return nil
	}
}

// WithHTTPClient replaces the tuned default HTTP client; WithMaxConnsPerHost
// then has no effect.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("chat: nil HTTP client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithTimeout sets the per-call timeout used when the context has no deadline.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("chat: timeout must be positive")
		}
		c.timeout = d
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *config) error {
		if strings.TrimSpace(ua) == "" || strings.ContainsAny(ua, "\r\n") {
			return errors.New("chat: invalid user agent")
		}
		c.userAgent = ua
		return nil
	}
}

// WithCredentials sets the default credentials of every call.
func WithCredentials(cr Credentials) Option {
	return func(c *config) error {
		if cr.APIKey == "" {
			return errors.New("chat: credentials without an API key")
		}
		c.creds = cr
		return nil
	}
}

// WithMaxConnsPerHost sizes the connection pool (default 64); match it to
// the worker's concurrency so that keep-alive connections are reused.
func WithMaxConnsPerHost(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return errors.New("chat: max conns per host must be positive")
		}
		c.maxConns = n
		return nil
	}
}

// WithRateLimit enables (default) or disables the client-side adaptive
// rate limiter.
func WithRateLimit(enabled bool) Option {
	return func(c *config) error {
		c.rateLimit = enabled
		return nil
	}
}

// WithShare makes the rate limiter pace each API key at share() of the
// budget the API announces, for clients that spend one budget together:
// replicas of a worker, each at 1/n of it. share is asked at every response,
// so a change (a replica joins or leaves) applies from the next call; values
// outside (0, 1] count as 1.
func WithShare(share func() float64) Option {
	return func(c *config) error {
		if share == nil {
			return errors.New("chat: nil share func")
		}
		c.share = share
		return nil
	}
}

// WithObserver sets the observer of calls and limiter waits.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		if o == nil {
			return errors.New("chat: nil observer")
		}
		c.observer = o
		return nil
	}
}

// WithWarnings sets a function told of every Warning: a value of an API
// answer whose type was not the one assumed, left empty. Every call's
// Response carries its warnings too; this reaches the ones of iterators,
// which return no Response. It is called from the calling goroutine, once
// per value, so it should be cheap (count, or log each field once).
func WithWarnings(f func(Warning)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("chat: nil warning func")
		}
		c.warn = f
		return nil
	}
}

// New returns a Client configured by opts.
func New(opts ...Option) (*Client, error) {
	cfg := config{
		baseURL:   DefaultBaseURL,
		timeout:   DefaultTimeout,
		userAgent: DefaultUserAgent,
		maxConns:  DefaultMaxConnsPerHost,
		rateLimit: true,
		observer:  nopObserver{},
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(cfg.baseURL)
	if err != nil {
		return nil, fmt.Errorf("chat: invalid base URL: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	hc := cfg.httpClient
	if hc == nil {
		hc = &http.Client{
			Transport: newTransport(cfg.maxConns),
			// Never follow redirects: a POST would silently become a GET and
			// the credentials in the query would go to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.wrap != nil {
		hc = wrapTransport(hc, cfg.wrap)
	}
	c := &Client{
		baseURL:   u,
		http:      hc,
		timeout:   cfg.timeout,
		userAgent: cfg.userAgent,
		creds:     cfg.creds,
		observer:  cfg.observer,
		warn:      cfg.warn,
	}
	if cfg.rateLimit {
		c.limiters = newLimiterSet(cfg.share)
	}
	return c, nil
}

func newTransport(maxConns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CloseIdleConnections closes idle keep-alive connections of the client's
// transport (useful on shutdown and in leak-checked tests).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// CallOption configures one call.
type CallOption func(*callConfig)

type callConfig struct {
	idempotencyKey string
	creds          *Credentials
	retry          func() backoff.BackOff
}

// WithRetry makes a read (GET, and so each page of the iterators) try again
// after a retryable failure (ErrRetryable), waiting as long as the BackOff
// that newBackOff returns for the call says and never less than the API's
// Retry-After, until the BackOff returns backoff.Stop or ctx ends; the last
// failure is returned. Writes (POST) ignore it: the API is not known to
// honour idempotency keys, so repeating a write is the caller's decision,
// made with its own count of attempts.
func WithRetry(newBackOff func() backoff.BackOff) CallOption {
	return func(c *callConfig) { c.retry = newBackOff }
}

// WithIdempotencyKey sets the Idempotency-Key header of a POST. Without it a
// random key is sent.
func WithIdempotencyKey(key string) CallOption {
	return func(c *callConfig) { c.idempotencyKey = key }
}

// WithCallCredentials overrides the client's default credentials for one
// call (for example another project's site token).
func WithCallCredentials(cr Credentials) CallOption {
	return func(c *callConfig) { c.creds = &cr }
}

// Response is the HTTP response of a call. It is returned with API errors
// too, so callers can store the body as returned.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       json.RawMessage // the raw body as returned (at most MaxBodySize bytes)
	RateLimit  RateLimit
	// Warnings lists the values of a 2xx body whose type was not the one
	// assumed (see Warning); the call succeeded regardless.
	Warnings []Warning
}

// validChatID refuses IDs that could change the request path or are
// outside the documented length.
func validChatID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidChatID)
	case id == "." || id == "..":
		return fmt.Errorf("%w: %q is a path segment", ErrInvalidChatID, id)
	case len(id) > MaxChatIDLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidChatID, len(id), MaxChatIDLen)
	}
	return nil
}

// chatPath returns the escaped relative path "/chats/{id}" + suffix.
func chatPath(id, suffix string) (string, error) {
	if err := validChatID(id); err != nil {
		return "", err
	}
	return "/chats/" + url.PathEscape(id) + suffix, nil
}

// call performs an API call, retried as WithRetry asks. escPath is already
// escaped; out, if non-nil, receives the decoded 2xx body.
func (c *Client) call(ctx context.Context, op, method, escPath string, query url.Values, body any, out any, opts []CallOption) (*Response, error) {
	var cc callConfig
	for _, o := range opts {
		o(&cc)
	}
	if cc.retry == nil || method != http.MethodGet {
		return c.callOnce(ctx, op, method, escPath, query, body, out, cc)
	}
	b := cc.retry()
	for {
		r, err := c.callOnce(ctx, op, method, escPath, query, body, out, cc)
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return r, err
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			return r, err
		}
		if ra, ok := RetryAfter(err); ok {
			d = max(d, ra)
		}
		if sleepCtx(ctx, d) != nil {
			return r, err
		}
	}
}

// callOnce performs one API call.
func (c *Client) callOnce(ctx context.Context, op, method, escPath string, query url.Values, body any, out any, cc callConfig) (*Response, error) {
	creds := c.creds
	if cc.creds != nil {
		creds = *cc.creds
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}

	fullPath := c.baseURL.EscapedPath() + escPath
	u := *c.baseURL
	u.RawPath = fullPath
	p, err := url.PathUnescape(fullPath)
	if err != nil {
		return nil, fmt.Errorf("%w: bad path: %v", ErrInvalidRequest, err)
	}
	u.Path = p
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if creds.APIKey != "" {
		q.Set("api_key", creds.APIKey)
	}
	if creds.SiteToken != "" {
		q.Set("site_token", creds.SiteToken)
	}
	u.RawQuery = q.Encode()

	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%w: encoding body: %v", ErrInvalidRequest, err)
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rdr)
	if err != nil {
		return nil, &TransportError{Op: op, Method: method, Path: fullPath, Err: stripURL(err, fullPath), msg: redact(stripURL(err, fullPath).Error(), creds)}
	}
	// u.String() re-derives the URL; keep our exact escaping on the wire.
	req.URL.Path, req.URL.RawPath = u.Path, u.RawPath
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		key := cc.idempotencyKey
		if key == "" {
			key = rand.Text()
		}
		req.Header.Set("Idempotency-Key", key)
		// net/http silently replays a request carrying Idempotency-Key when a
		// reused connection breaks before the response. The API is not known to
		// honour the key, so that replay could post a message twice behind the
		// caller's back; without GetBody the transport cannot replay it and the
		// caller, who counts attempts, decides. (Archive has no body and stays
		// replayable: archiving twice is harmless.)
		req.GetBody = nil
	}

	var lim *keyLimiter
	if c.limiters != nil {
		lim = c.limiters.get(creds.APIKey)
		waited, release, err := lim.take(ctx)
		if waited > 0 {
			c.observer.LimiterWait(waited)
		}
		if err != nil {
			terr := newTransportError(op, method, fullPath, err, creds)
			c.observer.APICall(op, 0, 0, terr)
			return nil, terr
		}
		defer release()
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		terr := newTransportError(op, method, fullPath, err, creds)
		c.observer.APICall(op, 0, time.Since(start), terr)
		return nil, terr
	}
	data, rerr := readCapped(resp.Body)
	resp.Body.Close()
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data, RateLimit: parseRateLimit(resp.Header)}
	if lim != nil {
		lim.observe(resp.StatusCode, r.RateLimit, parseRetryAfter(resp.Header, time.Now()))
	}
	if rerr != nil {
		terr := newTransportError(op, method, fullPath, rerr, creds)
		c.observer.APICall(op, resp.StatusCode, time.Since(start), terr)
		return r, terr
	}
	if err := checkResponse(op, method, fullPath, r, creds); err != nil {
		c.observer.APICall(op, resp.StatusCode, time.Since(start), err)
		return r, err
	}
	if err := c.decode(op, method, fullPath, r, out, creds); err != nil {
		c.observer.APICall(op, resp.StatusCode, time.Since(start), err)
		return r, err
	}
	c.observer.APICall(op, resp.StatusCode, time.Since(start), nil)
	return r, nil
}

// decode reads a 2xx body into out. Values of unexpected types are left
// empty with a warning; the call fails only when the answer cannot be the
// Chat API's: an HTML page, or a body that is not a JSON object where one
// was expected. That is a configuration error (a proxy, a wrong base URL):
// retrying will not help, and the effect, if any, is not known.
func (c *Client) decode(op, method, path string, r *Response, out any, creds Credentials) error {
	notAPI := func() error {
		return &APIError{Op: op, Method: method, Path: path, StatusCode: r.StatusCode, RateLimit: r.RateLimit,
			NotChatAPI: true, ContentType: redact(contentType(r.Header), creds)}
	}
	if contentType(r.Header) == "text/html" {
		return notAPI()
	}
	if out == nil || len(bytes.TrimSpace(r.Body)) == 0 {
		return nil
	}
	warns, err := decodeBody(op, r.Body, out)
	switch {
	case errors.Is(err, errBrokenObject):
		return newTransportError(op, method, path, fmt.Errorf("decoding response: %w", err), creds)
	case err != nil:
		return notAPI()
	}
	r.Warnings = warns
	if c.warn != nil {
		for _, w := range warns {
			c.warn(w)
		}
	}
	return nil
}

// errBodyTooLarge reports a response body over MaxBodySize.
var errBodyTooLarge = errors.New("response body exceeds size limit")

func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		return b, fmt.Errorf("reading response: %w", err)
	}
	if len(b) > MaxBodySize {
		return b[:MaxBodySize], errBodyTooLarge
	}
	return b, nil
}
