package chatsim_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/chat/chatsim"
)

func TestRegisterFlags(t *testing.T) {
	var cfg chatsim.Config
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-rate-per-minute", "750", "-rate-window", "1s", "-latency", "5ms", "-latency-jitter", "2ms",
		"-error-rate", "0.1", "-drop-rate", "0.2", "-hang-rate", "0.3", "-truncate-rate", "0.4",
		"-honour-idempotency-key", "-not-found-prefix", "gone:", "-seed", "7", "-quirk-archived-bool",
		"-credentials", "k1=GSN-1,GSN-2;k2=GSN-3",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := chatsim.Config{
		Credentials:   map[string][]string{"k1": {"GSN-1", "GSN-2"}, "k2": {"GSN-3"}},
		RatePerMinute: 750, RateWindow: time.Second, NotFoundPrefix: "gone:", HonourIdempotencyKey: true, Seed: 7,
		Quirks: chatsim.Quirks{ArchivedBool: true},
		Faults: chatsim.Faults{Latency: 5 * time.Millisecond, LatencyJitter: 2 * time.Millisecond, ErrorRate: 0.1, DropRate: 0.2, HangRate: 0.3, TruncateRate: 0.4},
	}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("config = %+v\nwant     %+v", cfg, want)
	}
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	if strings.Contains(usage.String(), "k1") {
		t.Error("usage prints a key")
	}
}

func TestParseCredentialsErrorsHideKeys(t *testing.T) {
	for _, in := range []string{"secretkey", "secretkey=", "=GSN-1", "secretkey=,;"} {
		_, err := chatsim.ParseCredentials(in)
		if err == nil {
			t.Errorf("%q accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "secretkey") {
			t.Errorf("error shows the key: %v", err)
		}
	}
}

func post(t testing.TB, url, body, key string) (int, []byte) {
	req, _ := http.NewRequest("POST", url+"?api_key=k&site_token=s", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDeterministic: the same seed and the same sequential traffic give the
// same IDs.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		srv := httptest.NewServer(chatsim.New(chatsim.Config{Seed: 42}))
		defer srv.Close()
		var ids []string
		for i := range 3 {
			_, b := post(t, srv.URL+"/chats/x/messages", fmt.Sprintf(`{"content":"m%d"}`, i), "")
			var m struct{ ID string }
			json.Unmarshal(b, &m)
			ids = append(ids, m.ID)
		}
		return ids
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) || a[0] == "" || a[0] == a[1] {
		t.Errorf("ids %v vs %v", a, b)
	}
}

// TestConcurrentIdempotency: concurrent requests with one key make one effect.
func TestConcurrentIdempotency(t *testing.T) {
	sim := chatsim.New(chatsim.Config{HonourIdempotencyKey: true})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	var wg sync.WaitGroup
	bodies := make([]string, 16)
	for i := range bodies {
		wg.Go(func() {
			_, b := post(t, srv.URL+"/chat/v1/chats/a%2Fb/notes", `{"content":"n"}`, "same")
			bodies[i] = string(b)
		})
	}
	wg.Wait()
	if n := len(sim.Effects()); n != 1 {
		t.Errorf("effects = %d", n)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("replay %s differs from %s", b, bodies[0])
		}
	}
	if st := sim.Stats(); st.IdempotentReplays != 15 {
		t.Errorf("replays = %d", st.IdempotentReplays)
	}
}

func TestRoutes(t *testing.T) {
	srv := httptest.NewServer(chatsim.New(chatsim.Config{}))
	defer srv.Close()
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/chats", 200},
		{"GET", "/chat/v1/chats", 200},
		{"GET", "/chats/%2F", 200},
		{"GET", "/chats/%2E%2E/feed", 404},
		{"GET", "/chats/x/unknown", 404},
		{"GET", "/chats/x/archive", 405},
		{"DELETE", "/chats/x", 405},
		{"GET", "/elsewhere", 404},
		{"GET", "/_sim/stats", 200},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path+"?api_key=k&site_token=s", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	sim := chatsim.New(chatsim.Config{RatePerMinute: 1 << 30})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(b, srv.URL+"/chat/v1/chats/bench/messages", `{"content":"x"}`, "")
		}
	})
}
