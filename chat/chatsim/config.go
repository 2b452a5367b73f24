package chatsim

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

// APIRatePerMinute is the Live Chat API's budget: 750 units per minute per
// user, refilled continuously. `worker sim` uses it unless told otherwise;
// a Config's zero RatePerMinute is unlimited, which tests and benchmarks
// that measure the worker rather than the budget rely on.
const APIRatePerMinute = 750

// Config configures a Server.
type Config struct {
	// Credentials maps an API key to the site tokens it may use. When empty,
	// any non-empty api_key and site_token are accepted.
	Credentials map[string][]string
	// RatePerMinute is the budget in units (one per call) per RateWindow,
	// refilled continuously, per API key; 0 switches rate limiting off.
	// When on, every API response carries the X-RateLimit-* headers, and a
	// call over budget is answered 429 with Retry-After.
	RatePerMinute int
	// RateWindow is the budget's "minute" (default time.Minute); a shorter
	// window lets tests run quickly. X-RateLimit-Limit always reports units
	// per real minute, so clients derive the same refill rate.
	RateWindow time.Duration
	// NotFoundPrefix marks unknown chats: IDs starting with it answer 404
	// code 4004 (default "missing:").
	NotFoundPrefix string
	Faults         Faults
	// Quirks make answers take shapes other than the ones the API is
	// assumed to use, to test that clients read them leniently.
	Quirks Quirks
	// HonourIdempotencyKey makes a repeated Idempotency-Key (per API key)
	// return the stored first response without a second effect.
	HonourIdempotencyKey bool
	// Seed makes IDs and fault injection deterministic.
	Seed int64
}

// Quirks are shapes of answers that the API document only assumes. Each
// one makes the simulator answer as an API differing from the assumption
// would.
type Quirks struct {
	// ArchivedBool answers a chat's "archived" as true or false instead of
	// null or the epoch milliseconds of archiving.
	ArchivedBool bool `json:"archived_bool"`
}

// Faults are injected failures; rates are fractions in [0, 1].
type Faults struct {
	Latency       time.Duration `json:"latency"`        // added to every request
	LatencyJitter time.Duration `json:"latency_jitter"` // plus uniform [0, jitter)
	ErrorRate     float64       `json:"error_rate"`     // 500/503 code 5000, before any effect
	DropRate      float64       `json:"drop_rate"`      // connection closed after the effect
	HangRate      float64       `json:"hang_rate"`      // no answer until the client gives up
	TruncateRate  float64       `json:"truncate_rate"`  // body cut short after the effect
}

func (f Faults) validate() error {
	for _, r := range []float64{f.ErrorRate, f.DropRate, f.HangRate, f.TruncateRate} {
		if r < 0 || r > 1 || r != r {
			return errors.New("chatsim: fault rates must be within [0, 1]")
		}
	}
	if f.Latency < 0 || f.LatencyJitter < 0 {
		return errors.New("chatsim: latencies must not be negative")
	}
	return nil
}

// UnmarshalJSON accepts durations as Go duration strings ("50ms") or as
// integer nanoseconds.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var v struct {
		Latency       json.RawMessage `json:"latency"`
		LatencyJitter json.RawMessage `json:"latency_jitter"`
		ErrorRate     float64         `json:"error_rate"`
		DropRate      float64         `json:"drop_rate"`
		HangRate      float64         `json:"hang_rate"`
		TruncateRate  float64         `json:"truncate_rate"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	lat, err := parseDuration(v.Latency)
	if err != nil {
		return err
	}
	jit, err := parseDuration(v.LatencyJitter)
	if err != nil {
		return err
	}
	*f = Faults{Latency: lat, LatencyJitter: jit, ErrorRate: v.ErrorRate, DropRate: v.DropRate, HangRate: v.HangRate, TruncateRate: v.TruncateRate}
	return nil
}

func parseDuration(b json.RawMessage) (time.Duration, error) {
	if len(b) == 0 || string(b) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return 0, fmt.Errorf("chatsim: duration must be a string like \"50ms\" or nanoseconds: %w", err)
	}
	return time.Duration(n), nil
}

// RegisterFlags binds the configuration to flags for `worker sim`.
// Credentials are accepted but never printed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.RatePerMinute, "rate-per-minute", c.RatePerMinute, "rate budget in units per minute per API key, refilled continuously (0 = off)")
	fs.DurationVar(&c.RateWindow, "rate-window", c.RateWindow, "length of the rate budget's window (default 1m)")
	fs.DurationVar(&c.Faults.Latency, "latency", c.Faults.Latency, "latency added to every request")
	fs.DurationVar(&c.Faults.LatencyJitter, "latency-jitter", c.Faults.LatencyJitter, "random extra latency in [0, jitter)")
	fs.Float64Var(&c.Faults.ErrorRate, "error-rate", c.Faults.ErrorRate, "fraction of requests answered 500/503")
	fs.Float64Var(&c.Faults.DropRate, "drop-rate", c.Faults.DropRate, "fraction of requests whose connection is closed after the effect")
	fs.Float64Var(&c.Faults.HangRate, "hang-rate", c.Faults.HangRate, "fraction of requests that never get an answer")
	fs.Float64Var(&c.Faults.TruncateRate, "truncate-rate", c.Faults.TruncateRate, "fraction of responses cut short after the effect")
	fs.BoolVar(&c.Quirks.ArchivedBool, "quirk-archived-bool", c.Quirks.ArchivedBool, `answer a chat's "archived" as true/false instead of null or epoch ms`)
	fs.BoolVar(&c.HonourIdempotencyKey, "honour-idempotency-key", c.HonourIdempotencyKey, "replay the first response for a repeated Idempotency-Key")
	fs.StringVar(&c.NotFoundPrefix, "not-found-prefix", c.NotFoundPrefix, "chat IDs with this prefix answer 404 (default \"missing:\")")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed")
	fs.Func("credentials", `accepted credentials "key=site1,site2;key2=site3" (default: any)`, func(s string) error {
		m, err := ParseCredentials(s)
		if err != nil {
			return err
		}
		c.Credentials = m
		return nil
	})
}

// ParseCredentials parses "key=site1,site2;key2=site3". Its errors never
// contain the keys.
func ParseCredentials(s string) (map[string][]string, error) {
	m := map[string][]string{}
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, sites, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("chatsim: credentials entry %d: want key=site1,site2", i+1)
		}
		for _, site := range strings.Split(sites, ",") {
			if site = strings.TrimSpace(site); site != "" {
				m[key] = append(m[key], site)
			}
		}
		if len(m[key]) == 0 {
			return nil, fmt.Errorf("chatsim: credentials entry %d: no site token", i+1)
		}
		sort.Strings(m[key])
	}
	return m, nil
}
