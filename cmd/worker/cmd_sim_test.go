package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestSimDefaultsToTheAPIBudget: `worker sim` answers with the API's budget
// (750 units a minute) and its headers on every response, refusals
// included; --rate-per-minute 0 switches it off.
func TestSimDefaultsToTheAPIBudget(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantLimit string // "" = no headers
	}{
		{name: "default", wantLimit: "750"},
		{name: "off", args: []string{"--rate-per-minute", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := startSim(t, tt.args...)
			for _, c := range []struct {
				query    string
				status   int
				wantCost string
			}{
				{"?api_key=k&site_token=GSN-1-S", 200, "1"},
				{"?api_key=k&site_token=GSN-1-S", 200, "1"},
				{"", 401, "0"}, // refused before the budget is charged
			} {
				resp, err := http.Get(base + "/chat/v1/chats" + c.query)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				h := resp.Header
				if resp.StatusCode != c.status {
					t.Fatalf("GET /chats%s: %d, want %d", c.query, resp.StatusCode, c.status)
				}
				if tt.wantLimit == "" {
					if v := h.Get("X-RateLimit-Limit"); v != "" {
						t.Errorf("rate limit off, but X-RateLimit-Limit: %s", v)
					}
					continue
				}
				if h.Get("X-RateLimit-Limit") != tt.wantLimit || h.Get("X-RateLimit-Cost") != c.wantCost ||
					h.Get("X-RateLimit-Remaining") == "" || h.Get("X-RateLimit-Full") == "" {
					t.Errorf("GET /chats%s: headers %v, want limit %s, cost %s, remaining and full", c.query, h, tt.wantLimit, c.wantCost)
				}
			}
		})
	}
}

var simAddr = regexp.MustCompile(`listening on (http://[^/\s]+)`)

// startSim runs `worker sim` on a free port until the test ends and returns
// its base URL.
func startSim(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"sim", "--listen", "127.0.0.1:0"}, args...), nil, out, out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker sim: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := simAddr.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("worker sim ended: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("worker sim did not start:\n%s", out.String())
	return ""
}
