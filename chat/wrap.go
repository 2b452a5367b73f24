package chat

import (
	"errors"
	"net/http"
)

// WithTransportWrapper wraps the client's transport (the tuned default, or
// that of WithHTTPClient's client) in wrap, for instrumentation such as
// tracing. The pool and the refusal to follow redirects stay as they are;
// the client given to WithHTTPClient is not changed.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *config) error {
		if wrap == nil {
			return errors.New("chat: nil transport wrapper")
		}
		c.wrap = wrap
		return nil
	}
}

func wrapTransport(hc *http.Client, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = wrap(base)
	return &wrapped
}
