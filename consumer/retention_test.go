package consumer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

const day = 24 * time.Hour

// TestRetentionPolicy: the combinations that cannot keep the guarantee are
// refused, by Validate too, with the flags to change; those that weaken it
// are warnings.
func TestRetentionPolicy(t *testing.T) {
	tests := []struct {
		name    string
		topo    consumer.Topology
		refused []string // parts of the error; nil: accepted
		warns   []string // one part of each warning, in order (of accepted ones)
	}{
		// The defaults' gap is documented, not warned of at every start.
		{name: "defaults: ids remembered less long than commands are kept", topo: consumer.Topology{}},
		{name: "a chosen ttl shorter than the commands' retention", topo: consumer.Topology{IdempotencyTTL: 12 * time.Hour},
			warns: []string{"raise --idempotency-ttl to 168h"}},
		{name: "a chosen commands' retention longer than the ttl", topo: consumer.Topology{CommandsMaxAge: 14 * day},
			warns: []string{"raise --idempotency-ttl to 336h"}},
		{name: "the whole policy kept", topo: consumer.Topology{IdempotencyTTL: 7 * day}},
		{name: "shorter commands' retention", topo: consumer.Topology{CommandsMaxAge: day}},
		{name: "results kept less long than ids", topo: consumer.Topology{IdempotencyTTL: 7 * day, ResultsMaxAge: 3 * day},
			warns: []string{"raise --results-max-age to 168h"}},
		{name: "both weakened", topo: consumer.Topology{IdempotencyTTL: 2 * day, ResultsMaxAge: day},
			warns: []string{"--commands-max-age", "--results-max-age"}},
		{name: "ttl just over the window", topo: consumer.Topology{IdempotencyTTL: 11 * time.Minute, CommandsMaxAge: 11 * time.Minute}},
		{name: "ttl equal to the window", topo: consumer.Topology{IdempotencyTTL: 10 * time.Minute},
			refused: []string{"idempotency TTL 10m (--idempotency-ttl) must be longer than the duplicate window 10m (--duplicate-window)", "raise --idempotency-ttl or lower --duplicate-window"}},
		{name: "window over the ttl", topo: consumer.Topology{DuplicateWindow: 2 * day},
			refused: []string{"the idempotency TTL 24h (--idempotency-ttl) must be longer than the duplicate window 48h"}},
		{name: "window over the results' retention", topo: consumer.Topology{DuplicateWindow: 2 * time.Hour, ResultsMaxAge: time.Hour},
			refused: []string{"outlasts the results' retention 1h (--results-max-age)", "lower --duplicate-window or raise --results-max-age"}},
		{name: "window over the commands' retention", topo: consumer.Topology{DuplicateWindow: 2 * time.Hour, CommandsMaxAge: time.Hour},
			refused: []string{"commands' retention 1h (--commands-max-age)"}},
		{name: "window over the dead letters' retention", topo: consumer.Topology{DuplicateWindow: 2 * time.Hour, DeadLettersMaxAge: time.Hour},
			refused: []string{"(--dlq-max-age)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warnings, refused := tt.topo.RetentionPolicy()
			verr := tt.topo.Validate()
			if tt.refused == nil {
				if refused != nil || verr != nil {
					t.Fatalf("refused: %v; Validate: %v", refused, verr)
				}
			}
			for _, want := range tt.refused {
				if refused == nil || !strings.Contains(refused.Error(), want) {
					t.Errorf("refusal %v does not say %q", refused, want)
				}
				if verr == nil || !strings.Contains(verr.Error(), want) {
					t.Errorf("Validate %v does not say %q", verr, want)
				}
			}
			if tt.refused != nil {
				return // warnings of a refused combination do not matter
			}
			if len(warnings) != len(tt.warns) {
				t.Fatalf("warnings %q, want %d", warnings, len(tt.warns))
			}
			for i, want := range tt.warns {
				if !strings.Contains(warnings[i], want) {
					t.Errorf("warning %q does not say %q", warnings[i], want)
				}
			}
		})
	}
}

// TestProvisionUpdatesRetention: provisioning again with other retention
// changes the existing streams in place, and a refused combination changes
// nothing.
func TestProvisionUpdatesRetention(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	check := func(commands, results, window time.Duration) {
		t.Helper()
		for name, age := range map[string]time.Duration{"CHAT_COMMANDS": commands, "CHAT_RESULTS": results} {
			s, err := js.Stream(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			if cfg.MaxAge != age || cfg.Duplicates != window {
				t.Errorf("%s: max age %v, duplicate window %v; want %v, %v", name, cfg.MaxAge, cfg.Duplicates, age, window)
			}
		}
	}
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	check(7*day, 7*day, 10*time.Minute)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{CommandsMaxAge: 3 * day, ResultsMaxAge: 2 * day,
		DuplicateWindow: time.Hour, IdempotencyTTL: 2 * day}); err != nil {
		t.Fatal(err)
	}
	check(3*day, 2*day, time.Hour)
	// Back up: longer again.
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{CommandsMaxAge: 10 * day, ResultsMaxAge: 14 * day,
		IdempotencyTTL: 10 * day}); err != nil {
		t.Fatal(err)
	}
	check(10*day, 14*day, 10*time.Minute)
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{ResultsMaxAge: time.Hour, DuplicateWindow: 2 * time.Hour}); err == nil {
		t.Fatal("a window longer than the results' retention was provisioned")
	}
	check(10*day, 14*day, 10*time.Minute)
	// The results stream's other settings stay as provisioned.
	s, err := js.Stream(t.Context(), "CHAT_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.Retention != jetstream.LimitsPolicy || !cfg.AllowDirect {
		t.Errorf("results stream after the updates: %+v", cfg)
	}
}
