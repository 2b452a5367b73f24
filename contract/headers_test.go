package contract

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestCheckHeaders(t *testing.T) {
	many := nats.Header{}
	for i := range MaxHeaders + 1 {
		many.Add(fmt.Sprintf("X-%d", i), "v")
	}
	repeated := nats.Header{"X-A": make([]string, MaxHeaders+1)}
	atLimit := nats.Header{}
	for i := range MaxHeaders {
		atLimit.Add(fmt.Sprintf("X-%d", i), "v")
	}
	tests := []struct {
		name    string
		h       nats.Header
		problem string
	}{
		{"none", nil, ""},
		{"usual", nats.Header{"Nats-Msg-Id": {"8c0f"}, "traceparent": {"00-abc-def-01"}}, ""},
		{"at the count limit", atLimit, ""},
		{"too many names", many, "65 header lines"},
		{"too many values of one name", repeated, "65 header lines"},
		{"just fits", nats.Header{"X": {strings.Repeat("v", MaxHeaderBytes-len("X: \r\n"))}}, ""},
		{"too large", nats.Header{"X": {strings.Repeat("v", MaxHeaderBytes)}}, "the limit is 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHeaders(tt.h)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.problem) || ClassOf(err) != ClassInvalid {
				t.Fatalf("error %v (class %s), want invalid saying %q", err, ClassOf(err), tt.problem)
			}
		})
	}
}
