package chat

import (
	"testing"
	"time"
)

// TestBudgetCountsTheLastMinute: a key's budget says what the API last said
// and what this client spent in the last minute, and forgets spending older
// than that. A 429 spent nothing.
func TestBudgetCountsTheLastMinute(t *testing.T) {
	k := newLimiterSet(nil).get("k")
	if b := k.budget(time.Now()); b.Known || b.Used != 0 {
		t.Fatalf("budget before any response = %+v, want unknown and nothing used", b)
	}
	for range 3 {
		k.observe(200, RateLimit{Known: true, Cost: 2, Limit: 600, Remaining: 590}, 0)
	}
	k.observe(429, RateLimit{Known: true, Cost: 2, Limit: 600, Remaining: 0}, time.Second)
	now := time.Now()
	if b, want := k.budget(now), (Budget{Known: true, Limit: 600, Remaining: 0, Used: 6}); b != want {
		t.Fatalf("budget = %+v, want %+v", b, want)
	}
	if b := k.budget(now.Add(61 * time.Second)); b.Used != 0 {
		t.Fatalf("a minute later the budget says %d units used, want 0", b.Used)
	}
}

func TestClientBudgetWithoutRateLimiting(t *testing.T) {
	c, err := New(WithBaseURL("http://127.0.0.1:1/chat/v1"), WithCredentials(Credentials{APIKey: "k", SiteToken: "s"}), WithRateLimit(false))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Budget(); b != (Budget{}) {
		t.Fatalf("a client without rate limiting says %+v of its budget", b)
	}
}
