package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A soak sized so that it cannot run is a usage error, said plainly.
func TestBenchSoakFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no commands", []string{"--soak-commands", "0"}},
		{"round of zero", []string{"--soak-round", "0"}},
		{"round above the total", []string{"--soak-commands", "100", "--soak-round", "200"}},
		{"no concurrency", []string{"--soak-concurrency", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"bench", "--soak"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--soak-round") {
				t.Errorf("got %v, want a usage error naming the soak's flags", err)
			}
		})
	}
}

// `worker bench --soak` prints the table and writes the JSON that
// cmd/benchchart draws (in this process: the test binary is no worker).
func TestBenchSoak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soak.json")
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "--soak", "--in-process-only", "--soak-commands", "200", "--soak-round", "100", "--soak-concurrency", "8", "--json", path}
	if err := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	table := strings.Join(strings.Fields(stdout.String()), " ")
	for _, want := range []string{"| 1 | 100 |", "| 2 | 200 |", "0 duplicates, 0 dead letters"} {
		if !strings.Contains(table, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil || rep.Soak == nil || len(rep.Soak.Rounds) != 2 || len(rep.Results) != 0 {
		t.Errorf("JSON: %v, %s", err, b)
	}
}

// --against and its companions refuse what cannot run, as usage errors
// naming the flag, before anything is built or measured.
func TestBenchAgainstFlags(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "worker")
	if err := os.WriteFile(notExec, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"with --soak", []string{"--against", "HEAD", "--soak"}, "--soak"},
		{"--current alone", []string{"--current", "/bin/true"}, "--current"},
		{"neither file nor revision", []string{"--against", "no-such-revision-or-file"}, "--against"},
		{"file not executable", []string{"--against", notExec}, "--against"},
		{"--current not executable", []string{"--against", "HEAD", "--current", notExec}, "--current"},
		{"no commands", []string{"--against", "HEAD", "--against-commands", "0"}, "--against-commands"},
		{"no chats", []string{"--against", "HEAD", "--against-chats", "0"}, "--against-chats"},
		{"no rounds", []string{"--against", "HEAD", "--rounds", "-1"}, "--rounds"},
		{"replicas neither 1 nor 3", []string{"--against", "HEAD", "--against-replicas", "2"}, "--against-replicas"},
		{"minimal loop without a server", []string{"--minimal-loop", "--minimal-api-url", "http://127.0.0.1:1"}, "--minimal-nats-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), append([]string{"bench"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error naming %s", err, tt.want)
			}
		})
	}
}
