package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun draws the suite's results and a soak's, each in its own chart,
// and refuses a file with neither.
func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    []string
		wantErr bool
	}{
		{
			name: "suite",
			json: `{"machine":"m","cores":2,"go":"go1","command":"worker bench","results":[
				{"group":"limit","mode":"limit","throughput":1000,"of_limit":1},
				{"group":"limit","mode":"worker","throughput":600,"of_limit":0.6}]}`,
			want: []string{"one worker against the simulator", "60% (median round 600/s)"},
		},
		{
			name: "soak",
			json: `{"machine":"m","cores":2,"go":"go1","command":"worker bench --soak","soak":{"layout":"processes","commands":400,"round_size":200,
				"concurrency":64,"server_rss_start":10485760,"server_rss_per_command":900,"rounds":[
				{"round":1,"commands":200,"rate":1000,"worker_rss":31457280,"worker_goroutines":277,"server_rss":20971520,
				 "streams":[{"stream":"CHAT_RESULTS","bytes":102400,"disk":102400},{"stream":"KV_CHAT_IDEMPOTENCY","bytes":136000,"disk":200000}]},
				{"round":2,"commands":400,"rate":900,"worker_rss":31457280,"worker_goroutines":277,"server_rss":31457280,
				 "streams":[{"stream":"CHAT_RESULTS","bytes":204800,"disk":204800},{"stream":"KV_CHAT_IDEMPOTENCY","bytes":272000,"disk":400000}]}]}}`,
			want: []string{"soak, one worker round by round", "round 2 (400 commands)", "900/s (90% of round 1)", "85% of round 1",
				"30.0 MiB, 277 goroutines", "900 bytes per command", "CHAT_RESULTS 512 B (disk 512), KV_CHAT_IDEMPOTENCY 680 B (disk 1000)"},
		},
		{name: "neither", json: `{"machine":"m"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.svg")
			if err := os.WriteFile(in, []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			err := run([]string{"-in", in, "-out", out}, nil)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error for a file with no results")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			svg, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.want {
				if !strings.Contains(string(svg), want) {
					t.Errorf("chart lacks %q:\n%s", want, svg)
				}
			}
		})
	}
}
