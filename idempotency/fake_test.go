package idempotency

import (
	"context"
	"errors"
	"testing"
)

func TestFake(t *testing.T) {
	want := &Claim{Record: Record{ID: "x"}}
	f := &Fake{ClaimFunc: func(context.Context, string, string) (*Claim, error) { return want, nil }}
	var s Store = f
	if got, err := s.Claim(t.Context(), "x", "h"); got != want || err != nil {
		t.Fatalf("Claim = %v, %v", got, err)
	}
	// Unset functions fail loudly instead of returning zero values.
	if err := s.Release(t.Context(), want); err == nil || errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Release with no ReleaseFunc: err = %v", err)
	}
}
