package chat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Classes of failure. Test with errors.Is; every error returned by the
// client matches at most one of them. Cancellation of the caller's context
// matches neither (errors.Is(err, context.Canceled) holds).
var (
	// ErrRetryable: network errors, timeouts, truncated or undecodable
	// responses, and HTTP 408, 425, 429 and 5xx. Trying again may succeed.
	ErrRetryable = errors.New("chat: retryable error")
	// ErrPermanent: the API refused the call (other 4xx), TLS certificate
	// failures, and requests refused before sending. Trying again will not help.
	ErrPermanent = errors.New("chat: permanent error")
)

// ErrConfig matches an answer that blames the worker's configuration rather
// than the call: HTTP 401 or 403, API code 4001 (key not authorised for the
// site), or an answer that is not the Chat API's at all (see
// APIError.NotChatAPI). It is a reason, not a class: such an error also
// matches ErrPermanent or ErrRetryable as before, so a caller that knows
// nothing of ErrConfig keeps its behaviour, and one that does checks it
// first. Trying again with the same credentials and base URL will not help;
// fixing them will.
var ErrConfig = errors.New("chat: configuration error")

// ErrUnavailable matches a failure of the API, or of the way to it, rather
// than of the call: a 5xx answer (the API's own, or a gateway's error page),
// or a transport failure (a timeout, a refused or reset connection, a DNS
// failure, a body cut short). Like ErrConfig it is a reason, not a class:
// such an error also matches ErrRetryable. One such failure says little;
// several commands of a project failing so together say the API is down for
// the project, which no command is to blame for.
var ErrUnavailable = errors.New("chat: API unavailable")

// ErrInvalidChatID is returned, before any request is made, for a chat ID
// that is empty, "." or "..", or longer than MaxChatIDLen bytes. It matches
// ErrPermanent.
var ErrInvalidChatID error = &refusedError{"chat: invalid chat ID"}

// ErrInvalidRequest is returned, before any request is made, for a request
// the client refuses to send (for example an unknown "from"). It matches
// ErrPermanent.
var ErrInvalidRequest error = &refusedError{"chat: invalid request"}

type refusedError struct{ msg string }

func (e *refusedError) Error() string        { return e.msg }
func (e *refusedError) Is(target error) bool { return target == ErrPermanent }

// APIError is an answer the client does not accept: any non-2xx answer, or
// a 2xx answer that is not the Chat API's (see NotChatAPI).
type APIError struct {
	Op         string // "send", "note", ...
	Method     string
	Path       string // escaped request path, never the query string
	StatusCode int
	Code       int    // the API's error code (4000, 4004, ...), 0 if the body had none
	Message    string // the API's message, credentials removed
	RetryAfter time.Duration
	RateLimit  RateLimit
	// NotChatAPI is set when the answer cannot be the Chat API's: a 2xx
	// whose body is not a JSON object where one was expected (or is an
	// HTML page), or a non-2xx other than 408, 425, 429 and 5xx whose body
	// is not the API's error JSON ({"code": <number>, ...}). A proxy's
	// page, a wrong base URL or another service answer so. Gateways answer
	// 408, 425, 429 and 5xx in their own words during real outages, so
	// those stay retryable and are not taken for a configuration failure.
	NotChatAPI  bool
	ContentType string // of a NotChatAPI answer, to tell what answered

	checkRefused bool // Check's fixed request was refused: nothing but the configuration can be at fault
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chat: %s %s %s: %d %s", e.Op, e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.NotChatAPI {
		b.WriteString(" (not an answer of the Chat API")
		if e.ContentType != "" {
			b.WriteString(": ")
			b.WriteString(e.ContentType)
		}
		b.WriteString(" body; check the base URL)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is matches ErrRetryable or ErrPermanent according to the status code, and
// ErrConfig when the answer blames the configuration.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRetryable:
		return retryableStatus(e.StatusCode)
	case ErrPermanent:
		return !retryableStatus(e.StatusCode)
	case ErrConfig:
		return e.Config()
	case ErrUnavailable:
		return e.StatusCode >= 500
	}
	return false
}

// Config reports whether the answer blames the configuration (credentials
// or base URL) rather than the call; errors.Is(err, ErrConfig) asks the same
// through wrapping.
func (e *APIError) Config() bool {
	switch {
	case e.StatusCode == http.StatusUnauthorized, e.StatusCode == http.StatusForbidden:
		return true
	case e.Code == codeNotAuthorised:
		return true
	}
	return e.NotChatAPI || e.checkRefused
}

// codeNotAuthorised is the API's code for a key not authorised for the site.
const codeNotAuthorised = 4001

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500
}

// TransportError is a failure without a usable API answer: the request could
// not be sent, the connection broke, the call timed out, or the body could
// not be read or decoded. Its message never contains the query string.
type TransportError struct {
	Op     string
	Method string
	Path   string // escaped request path, never the query string
	Err    error  // the cause; any *url.Error in it carries the path only

	msg   string // Err's message with credentials removed
	class error  // ErrRetryable, ErrPermanent or nil (caller cancelled)
}

func (e *TransportError) Error() string {
	return "chat: " + e.Op + " " + e.Method + " " + e.Path + ": " + e.msg
}

// Unwrap returns the cause, so errors.Is(err, context.DeadlineExceeded) works.
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches the error's class.
func (e *TransportError) Is(target error) bool {
	if target == ErrUnavailable {
		return e.class == ErrRetryable
	}
	return e.class != nil && target == e.class
}

func newTransportError(op, method, path string, err error, creds Credentials) *TransportError {
	err = stripURL(err, path)
	return &TransportError{Op: op, Method: method, Path: path, Err: err, msg: redact(err.Error(), creds), class: classify(err)}
}

// classify decides the class of a transport failure, after stripe-go's
// shouldRetry: the caller's cancellation is not retried, TLS certificate
// problems are permanent, everything else on the wire is worth another try.
func classify(err error) error {
	var (
		unknownAuth *x509.UnknownAuthorityError
		certInvalid x509.CertificateInvalidError
		hostname    x509.HostnameError
		verify      *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return nil
	case errors.As(err, &unknownAuth), errors.As(err, &certInvalid), errors.As(err, &hostname), errors.As(err, &verify):
		return ErrPermanent
	case errors.Is(err, errBodyTooLarge):
		return ErrPermanent
	}
	return ErrRetryable
}

// stripURL removes the query (credentials) from any *url.Error in err.
func stripURL(err error, path string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = path
	}
	return err
}

// Retryable reports whether err is worth retrying.
func Retryable(err error) bool { return errors.Is(err, ErrRetryable) }

// RetryAfter returns the server's hint of when to try again (Retry-After),
// if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// CheckResponse returns nil for a 2xx response and an *APIError otherwise.
// It reads at most MaxBodySize bytes of the body (and closes it) to find the
// API's {"code", "message"}.
func CheckResponse(r *http.Response) error {
	if r.StatusCode >= 200 && r.StatusCode < 300 {
		return nil
	}
	body, _ := readCapped(r.Body)
	r.Body.Close()
	path := ""
	method := ""
	if r.Request != nil {
		path, method = r.Request.URL.EscapedPath(), r.Request.Method
	}
	resp := &Response{StatusCode: r.StatusCode, Header: r.Header, Body: body, RateLimit: parseRateLimit(r.Header)}
	return checkResponse("", method, path, resp, Credentials{})
}

func checkResponse(op, method, path string, r *Response, creds Credentials) error {
	if r.StatusCode >= 200 && r.StatusCode < 300 {
		return nil
	}
	e := &APIError{
		Op: op, Method: method, Path: path,
		StatusCode: r.StatusCode,
		RetryAfter: parseRetryAfter(r.Header, time.Now()),
		RateLimit:  r.RateLimit,
	}
	// Each field on its own: a message of another type must not cost the
	// code, which decides what the failure means.
	var body map[string]json.RawMessage
	isAPI := false
	if json.Unmarshal(r.Body, &body) == nil && body != nil {
		var code json.Number
		if json.Unmarshal(body["code"], &code) == nil && code != "" {
			isAPI = true
			if n, err := code.Int64(); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
				e.Code = int(n)
			}
		}
		var msg string
		if json.Unmarshal(body["message"], &msg) == nil {
			e.Message = msg
		}
	}
	if !isAPI && !retryableStatus(r.StatusCode) {
		e.NotChatAPI = true
		e.ContentType = redact(contentType(r.Header), creds)
	}
	// Redact before cutting, so a credential straddling the cut cannot leave
	// a prefix behind; cut on a rune boundary, so the message stays UTF-8.
	e.Message = truncate(redact(e.Message, creds), maxMessageBytes)
	return e
}

// contentType is the media type of a response, without parameters, cut
// short: it goes into error messages.
func contentType(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return truncate(strings.ToLower(strings.TrimSpace(ct)), 64)
}

// maxMessageBytes bounds the API's message kept in an APIError.
const maxMessageBytes = 512

// truncate cuts s to at most n bytes (plus "...") on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// MaxRetryAfter caps the server's Retry-After hint. A hint is honoured up to
// this long; a larger one (or an absurd one such as "1e300") would otherwise
// park every call of the API key for years.
const MaxRetryAfter = time.Hour

// parseRetryAfter reads Retry-After as seconds or an HTTP date, within
// [0, MaxRetryAfter]; garbage (NaN, infinities, negatives) reads as 0.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
			if errors.Is(err, strconv.ErrRange) && s > 0 {
				return MaxRetryAfter
			}
			return 0
		}
		if s >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, MaxRetryAfter)
		}
	}
	return 0
}
