package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	cbackoff "github.com/cenkalti/backoff/v5"
)

func TestExponential(t *testing.T) {
	e := Exponential{Initial: 20 * time.Millisecond, Max: time.Second}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 20 * time.Millisecond}, {1, 20 * time.Millisecond}, {2, 40 * time.Millisecond},
		{6, 640 * time.Millisecond}, {7, time.Second}, {100, time.Second},
	}
	for _, tt := range tests {
		if got := e.Ceiling(tt.n); got != tt.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tt.n, got, tt.want)
		}
		for range 100 {
			if d := e.Full(tt.n); d <= 0 || d > tt.want {
				t.Fatalf("Full(%d) = %v, want (0, %v]", tt.n, d, tt.want)
			}
			if d := e.Equal(tt.n); d < tt.want/2 || d >= tt.want {
				t.Fatalf("Equal(%d) = %v, want [%v, %v)", tt.n, d, tt.want/2, tt.want)
			}
		}
	}
}

func TestRetry(t *testing.T) {
	e := Exponential{Initial: time.Microsecond, Max: time.Millisecond}
	errFail, errStop := errors.New("fail"), errors.New("stop")
	tests := []struct {
		name      string
		results   []error
		tries     int
		wantCalls int
		want      error
	}{
		{"first succeeds", []error{nil}, 3, 1, nil},
		{"third succeeds", []error{errFail, errFail, nil}, 3, 3, nil},
		{"tries run out", []error{errFail, errFail, errFail, nil}, 3, 3, errFail},
		{"permanent stops", []error{Permanent(errStop), nil}, 3, 1, errStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := Retry(t.Context(), tt.tries, e, func() error { calls++; return tt.results[calls-1] })
			if calls != tt.wantCalls || !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("calls %d, err %v; want %d, %v", calls, err, tt.wantCalls, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := 0
	if err := Retry(ctx, 5, e, func() error { calls++; return errFail }); calls != 1 || !errors.Is(err, errFail) {
		t.Errorf("cancelled: calls %d, err %v", calls, err)
	}
}

func TestLimit(t *testing.T) {
	b := Limit(&cbackoff.ConstantBackOff{Interval: time.Millisecond}, 2)
	for round := range 2 {
		for i := range 2 {
			if d := b.NextBackOff(); d != time.Millisecond {
				t.Fatalf("round %d, retry %d: %v, want 1ms", round, i+1, d)
			}
		}
		if d := b.NextBackOff(); d != cbackoff.Stop {
			t.Fatalf("round %d, third retry: %v, want Stop", round, d)
		}
		b.Reset()
	}
}
