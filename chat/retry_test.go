package chat_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/chatworker/worker/chat"
	ibackoff "github.com/chatworker/worker/internal/backoff"
)

// TestWithRetry: reads retry retryable failures only, as the BackOff says
// and never sooner than Retry-After; writes never retry.
func TestWithRetry(t *testing.T) {
	type answer struct {
		status int
		header []string
	}
	ok := answer{status: 200}
	tests := []struct {
		name      string
		answers   []answer // then 200
		post      bool
		retries   int
		wantCalls int64
		wantErr   bool
		wantWait  time.Duration // at least
	}{
		{name: "5xx then success", answers: []answer{{status: 503}, {status: 500}}, retries: 5, wantCalls: 3},
		{name: "429 honours Retry-After", answers: []answer{{status: 429, header: []string{"Retry-After", "0.3"}}}, retries: 5, wantCalls: 2, wantWait: 300 * time.Millisecond},
		{name: "gives up when the BackOff stops", answers: []answer{{status: 503}, {status: 503}, {status: 503}}, retries: 2, wantCalls: 3, wantErr: true},
		{name: "permanent not retried", answers: []answer{{status: 404}}, retries: 5, wantCalls: 1, wantErr: true},
		{name: "configuration not retried", answers: []answer{{status: 401}}, retries: 5, wantCalls: 1, wantErr: true},
		{name: "writes not retried", answers: []answer{{status: 503}}, post: true, retries: 5, wantCalls: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				a := ok
				if int(n) <= len(tt.answers) {
					a = tt.answers[n-1]
				}
				for i := 0; i+1 < len(a.header); i += 2 {
					w.Header().Set(a.header[i], a.header[i+1])
				}
				w.WriteHeader(a.status)
				if a.status == 200 {
					w.Write([]byte(`{"list":[],"id":"m"}`))
				} else {
					w.Write([]byte(`{"code":5000,"message":"Error"}`))
				}
			}))
			t.Cleanup(srv.Close)
			c, err := chat.New(chat.WithBaseURL(srv.URL), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}), chat.WithRateLimit(false))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			retry := chat.WithRetry(func() backoff.BackOff { return ibackoff.Limit(&backoff.ZeroBackOff{}, tt.retries) })
			start := time.Now()
			if tt.post {
				_, _, err = c.SendMessage(t.Context(), "abc", chat.SendMessageRequest{Content: "x"}, retry)
			} else {
				_, _, err = c.ListChats(t.Context(), chat.ListOptions{}, retry)
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
			if waited := time.Since(start); waited < tt.wantWait {
				t.Errorf("retried after %v, before Retry-After %v", waited, tt.wantWait)
			}
		})
	}
}
