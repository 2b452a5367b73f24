package bench_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatworker/worker/cmd/worker/bench"
)

// TestSoak runs the soak at a tiny size in both layouts, so that the code
// path of `worker bench --soak` cannot rot; it measures nothing (timings
// are never asserted), but checks that every figure is there.
func TestSoak(t *testing.T) {
	tests := []struct {
		name   string
		layout string
		binary bool
	}{
		{"in-process", bench.LayoutInProcess, false},
		{"processes", bench.LayoutProcesses, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := bench.SoakOptions{Commands: 400, Round: 200, Concurrency: 8, Chats: 20}
			if tt.binary {
				if testing.Short() {
					t.Skip("builds the worker binary")
				}
				if o.WorkerBinary = workerBinary(t); o.WorkerBinary == "" {
					t.Fatal("could not build the worker")
				}
			}
			var reported []bench.SoakRound
			res, err := bench.Soak(t.Context(), o, func(r bench.SoakRound) { reported = append(reported, r) })
			if err != nil {
				t.Fatal(err)
			}
			if res.Layout != tt.layout || len(res.Rounds) != 2 || len(reported) != 2 {
				t.Fatalf("layout %q, %d rounds, %d reported; want %q and 2", res.Layout, len(res.Rounds), len(reported), tt.layout)
			}
			if res.Dead != 0 || res.Duplicates != 0 {
				t.Errorf("%d dead letters, %d duplicates", res.Dead, res.Duplicates)
			}
			for i, r := range res.Rounds {
				if r.Round != i+1 || r.Commands != 200*(i+1) {
					t.Errorf("round %d: number %d, %d commands; want %d", i+1, r.Round, r.Commands, 200*(i+1))
				}
				if r.Rate <= 0 || r.WorkerRSS == 0 || r.WorkerPeakRSS == 0 || r.WorkerGoroutines == 0 || r.WorkerCPUPerCmd <= 0 {
					t.Errorf("round %d: a worker figure is missing: %+v", r.Round, r)
				}
				if tt.binary != (r.ServerRSS > 0 && r.ServerPeakRSS > 0) {
					t.Errorf("round %d: NATS server RSS %d, peak %d; measured apart only in its own process", r.Round, r.ServerRSS, r.ServerPeakRSS)
				}
				usage := map[string]bench.StreamUsage{}
				for _, s := range r.Streams {
					usage[s.Stream] = s
				}
				// Every command leaves one result and one idempotency record
				// (History 1), and nothing in the work queue.
				for name, msgs := range map[string]uint64{"CHAT_RESULTS": uint64(r.Commands), "KV_CHAT_IDEMPOTENCY": uint64(r.Commands), "CHAT_DLQ": 0} {
					u, ok := usage[name]
					if !ok || u.Msgs != msgs || (msgs > 0 && (u.Bytes == 0 || u.Disk == 0)) {
						t.Errorf("round %d: %s: %+v, want %d messages with their bytes", r.Round, name, u, msgs)
					}
				}
				if _, ok := usage["CHAT_COMMANDS"]; !ok {
					t.Errorf("round %d: no CHAT_COMMANDS figures", r.Round)
				}
			}
			if res.RateLastOverFirst <= 0 || tt.binary != (res.ServerRSSStart > 0) {
				t.Errorf("summary: rate ratio %v, server RSS at start %d", res.RateLastOverFirst, res.ServerRSSStart)
			}

			var out bytes.Buffer
			bench.WriteSoakTable(&out, res)
			table := strings.Join(strings.Fields(out.String()), " ")
			for _, want := range []string{"| 1 | 200 |", "| 2 | 400 |", "target at least 85%", "0 duplicates, 0 dead letters"} {
				if !strings.Contains(table, want) {
					t.Errorf("table lacks %q:\n%s", want, out.String())
				}
			}
			// The JSON of --soak, which cmd/benchchart reads, keeps the rounds.
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var back bench.SoakResult
			if err := json.Unmarshal(b, &back); err != nil || len(back.Rounds) != 2 || len(back.Rounds[1].Streams) != 4 {
				t.Errorf("JSON round trip: %v, %+v", err, back)
			}
		})
	}
}
