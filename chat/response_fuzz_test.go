package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCheckResponse feeds arbitrary statuses, bodies and rate-limit headers
// through the response checks. Whatever the server sends, the client must
// not panic, must classify every non-2xx answer, must keep its hints within
// bounds, and must never repeat the credentials.
func FuzzCheckResponse(f *testing.F) {
	seeds := []struct {
		status                                int
		body                                  string
		retryAfter, limit, remain, cost, full string
	}{
		{200, `{"id":"m1"}`, "", "", "", "", ""},
		{404, `{"code":4004,"message":"chat not found"}`, "", "", "", "", ""},
		{429, `{"code":4290,"message":"slow down"}`, "2", "600", "0", "1", "1.5"},
		{429, ``, "Wed, 21 Oct 2015 07:28:00 GMT", "60", "59", "1", "60"},
		{503, `<html>bad gateway</html>`, "1e300", "NaN", "-Inf", "1e19", "+Inf"},
		{401, `{"code":"4001","message":"key sk_live_SECRETKEY123 bad"}`, "-1", "0x10", "1.5", "-3", "-1"},
		{400, `{"code":1e99,"message":` + `"` + strings.Repeat("é", 300) + `"}`, "NaN", "", "", "", ""},
		{500, "\x00\xff{", "Inf", "9223372036854775808", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body), s.retryAfter, s.limit, s.remain, s.cost, s.full)
	}
	creds := Credentials{APIKey: "sk_live_SECRETKEY123", SiteToken: "GSN-SECRET-S"}
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter, limit, remain, cost, full string) {
		h := http.Header{}
		for name, v := range map[string]string{"Retry-After": retryAfter, "X-RateLimit-Limit": limit,
			"X-RateLimit-Remaining": remain, "X-RateLimit-Cost": cost, "X-RateLimit-Full": full} {
			if v != "" {
				h.Set(name, v)
			}
		}
		rl := parseRateLimit(h)
		for name, v := range map[string]int{"limit": rl.Limit, "remaining": rl.Remaining, "cost": rl.Cost} {
			if v < 0 || v > maxRateValue {
				t.Fatalf("rate limit %s = %d, outside [0, %d]", name, v, maxRateValue)
			}
		}
		if rl.Full < 0 || rl.Full > maxRateFull {
			t.Fatalf("rate limit full = %v, outside [0, %v]", rl.Full, maxRateFull)
		}
		if rl.Known && rl.Limit <= 0 {
			t.Fatalf("known rate limit with limit %d", rl.Limit)
		}
		if ra := parseRetryAfter(h, time.Now()); ra < 0 || ra > MaxRetryAfter {
			t.Fatalf("Retry-After %q gave %v, outside [0, %v]", retryAfter, ra, MaxRetryAfter)
		}

		// The limiter must accept whatever was learned without panicking
		// and without blocking beyond the capped hint.
		k := newLimiterSet(nil).get("k")
		k.observe(status, rl, parseRetryAfter(h, time.Now()))
		if until := time.Until(k.blockedUntil); until > MaxRetryAfter+time.Second {
			t.Fatalf("limiter blocked for %v", until)
		}

		// Whatever the body, lenient decoding neither panics nor fails on
		// a valid JSON object.
		for _, out := range []any{new(ChatList), new(FeedList), new(MessageList), new(Message), new(Chat)} {
			if _, err := decodeBody("fuzz", body, out); err == nil && jsonType(body) != "object" {
				t.Fatalf("decoded %q as %T", body, out)
			} else if err != nil && json.Valid(body) && jsonType(body) == "object" {
				t.Fatalf("valid object %q refused as %T: %v", body, out, err)
			}
		}

		r := &Response{StatusCode: status, Header: h, Body: body, RateLimit: rl}
		err := checkResponse("send", "POST", "/chat/v1/chats/x/messages", r, creds)
		if status >= 200 && status < 300 {
			if err != nil {
				t.Fatalf("status %d: %v", status, err)
			}
			return
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("status %d: error %T %v, want *APIError", status, err, err)
		}
		if errors.Is(err, ErrRetryable) == errors.Is(err, ErrPermanent) {
			t.Fatalf("status %d: retryable and permanent must be exclusive", status)
		}
		if ae.RetryAfter < 0 || ae.RetryAfter > MaxRetryAfter {
			t.Fatalf("RetryAfter %v out of bounds", ae.RetryAfter)
		}
		if len(ae.Message) > maxMessageBytes+len("...") {
			t.Fatalf("message of %d bytes", len(ae.Message))
		}
		if !utf8.ValidString(ae.Message) {
			t.Fatalf("message %q is not UTF-8", ae.Message)
		}
		msg := err.Error()
		if strings.Contains(msg, creds.APIKey) || strings.Contains(msg, creds.SiteToken) {
			t.Fatalf("credentials in %q", msg)
		}

		// The exported CheckResponse reads the body from the wire, capped.
		resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
		if err := CheckResponse(resp); (err == nil) != (status >= 200 && status < 300) {
			t.Fatalf("CheckResponse(%d) = %v", status, err)
		}
	})
}

// TestRetryAfterBounds pins the cases the fuzzer found: values that parse as
// floats but are not durations.
func TestRetryAfterBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"2": 2 * time.Second, "0.5": 500 * time.Millisecond, "0": 0, "-1": 0,
		"NaN": 0, "Inf": 0, "+Inf": 0, "-Inf": 0, "1e300": MaxRetryAfter, "86400": MaxRetryAfter,
		"Fri, 01 Jan 2027 00:00:00 GMT": MaxRetryAfter, "Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
	} {
		if got := parseRetryAfter(http.Header{"Retry-After": {v}}, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
	rl := parseRateLimit(http.Header{"X-Ratelimit-Limit": {"1e300"}, "X-Ratelimit-Remaining": {"-5"},
		"X-Ratelimit-Cost": {"NaN"}, "X-Ratelimit-Full": {"Inf"}})
	if rl.Limit != maxRateValue || rl.Remaining != 0 || rl.Cost != 0 || rl.Full != maxRateFull || !rl.Known {
		t.Errorf("clamped rate limit = %+v", rl)
	}
	if got := truncate(strings.Repeat("é", 300), maxMessageBytes); !utf8.ValidString(got) {
		t.Errorf("truncate split a rune: %q", got[len(got)-8:])
	}
}

// Every response's rate-limit headers are read: that allocates nothing.
func TestParseRateLimitAllocatesNothing(t *testing.T) {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "60")
	h.Set("X-RateLimit-Remaining", "59")
	h.Set("X-RateLimit-Cost", "1")
	h.Set("X-RateLimit-Full", "2.5")
	var rl RateLimit
	if n := testing.AllocsPerRun(100, func() { rl = parseRateLimit(h) }); n != 0 {
		t.Errorf("%v allocations per response", n)
	}
	if !rl.Known || rl.Limit != 60 || rl.Remaining != 59 || rl.Cost != 1 || rl.Full != 2500*time.Millisecond {
		t.Errorf("rate limit = %+v", rl)
	}
}
