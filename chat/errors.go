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

// APIError is a non-2xx answer of the API.
type APIError struct {
	Op         string // "send", "note", ...
	Method     string
	Path       string // escaped request path, never the query string
	StatusCode int
	Code       int    // the API's error code (4000, 4004, ...), 0 if the body had none
	Message    string // the API's message, credentials removed
	RetryAfter time.Duration
	RateLimit  RateLimit
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
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is matches ErrRetryable or ErrPermanent according to the status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRetryable:
		return retryableStatus(e.StatusCode)
	case ErrPermanent:
		return !retryableStatus(e.StatusCode)
	}
	return false
}

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
	var body struct {
		Code    json.Number `json:"code"`
		Message string      `json:"message"`
	}
	if json.Unmarshal(r.Body, &body) == nil {
		if n, err := body.Code.Int64(); err == nil {
			e.Code = int(n)
		}
		e.Message = body.Message
	}
	// Redact before cutting, so a credential straddling the cut cannot leave
	// a prefix behind; cut on a rune boundary, so the message stays UTF-8.
	e.Message = truncate(redact(e.Message, creds), maxMessageBytes)
	return e
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
