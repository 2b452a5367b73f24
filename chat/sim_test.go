package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
)

// The behavioural suite runs the client against the simulator, so that the
// two cannot drift apart.

func newSim(t *testing.T, cfg chatsim.Config, opts ...chat.Option) (*chat.Client, *chatsim.Server, string) {
	t.Helper()
	sim := chatsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	opts = append([]chat.Option{
		chat.WithBaseURL(srv.URL + "/chat/v1"),
		chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}),
	}, opts...)
	c, err := chat.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, sim, srv.URL
}

func apiErr(t *testing.T, err error) *chat.APIError {
	t.Helper()
	var ae *chat.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *chat.APIError", err, err)
	}
	return ae
}

func TestSimConversation(t *testing.T) {
	c, sim, _ := newSim(t, chatsim.Config{Seed: 1})
	ctx := t.Context()
	ids := []string{"abc123", "email:jo@example.com", "a/b", "a?b#c", "%2F", "sp ace\u00e9"}
	for _, id := range ids {
		m, resp, err := c.SendMessage(ctx, id, chat.SendMessageRequest{Content: "hello " + id})
		if err != nil {
			t.Fatalf("send %q: %v", id, err)
		}
		if m.From != "client" || m.Content != "hello "+id || m.ID == "" || m.PersonID != id || resp.StatusCode != 200 || len(resp.Body) == 0 {
			t.Errorf("send %q: %+v", id, m)
		}
	}
	effects := sim.Effects()
	if len(effects) != len(ids) {
		t.Fatalf("effects = %d", len(effects))
	}
	for i, id := range ids {
		e := effects[i]
		wantPath := "/chat/v1/chats/" + escape(id) + "/messages"
		if e.ChatID != id || e.Op != "send" || e.Seq != int64(i+1) || e.Path != wantPath || e.IdempotencyKey == "" || e.From != "client" {
			t.Errorf("effect %d = %+v, want chat %q path %s", i, e, id, wantPath)
		}
		ch, _, err := c.GetChat(ctx, id)
		if err != nil || ch.ID != id || ch.Latest == nil || ch.Latest.Message.Content != "hello "+id {
			t.Errorf("get %q: %+v, %v", id, ch, err)
		}
	}

	id := "email:jo@example.com"
	if _, _, err := c.SendMessage(ctx, id, chat.SendMessageRequest{Content: "from agent", From: "agent"}); err != nil {
		t.Fatal(err)
	}
	note, _, err := c.LeaveNote(ctx, id, chat.NoteRequest{Content: "vip"})
	if err != nil || !note.Private || note.Content != "vip" {
		t.Fatalf("note: %+v, %v", note, err)
	}
	if _, err := c.Archive(ctx, id); err != nil {
		t.Fatal(err)
	}
	ch, _, _ := c.GetChat(ctx, id)
	if ch.Archived == nil {
		t.Fatal("not archived")
	}
	// An agent's message leaves the chat archived; the visitor's brings it back.
	c.SendMessage(ctx, id, chat.SendMessageRequest{Content: "agent again", From: "agent"})
	if ch, _, _ := c.GetChat(ctx, id); ch.Archived == nil {
		t.Error("agent message unarchived the chat")
	}
	c.SendMessage(ctx, id, chat.SendMessageRequest{Content: "visitor again", From: "client"})
	if ch, _, _ := c.GetChat(ctx, id); ch.Archived != nil {
		t.Error("visitor message did not unarchive the chat")
	}

	msgs, _, err := c.Messages(ctx, id, chat.MessagesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs.List {
		got = append(got, m.Content)
	}
	want := "[visitor again agent again vip from agent hello email:jo@example.com]"
	if fmt.Sprint(got) != want {
		t.Errorf("messages = %v, want %s", got, want)
	}
	page, _, _ := c.Messages(ctx, id, chat.MessagesOptions{Limit: 2, Offset: 1})
	if len(page.List) != 2 || page.List[0].Content != "agent again" {
		t.Errorf("messages page = %+v", page.List)
	}

	feed, _, err := c.Feed(ctx, id, chat.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range feed.List {
		kinds = append(kinds, it.Type+":"+it.Event+it.Content)
	}
	if want := "[message:visitor again message:agent again event:archive message:vip message:from agent message:hello email:jo@example.com]"; fmt.Sprint(kinds) != want {
		t.Errorf("feed = %v, want %s", kinds, want)
	}

	list, _, err := c.ListChats(ctx, chat.ListOptions{Count: 3})
	if err != nil || len(list.List) != 3 || list.List[0].ID != id {
		t.Errorf("list = %+v, %v", list, err)
	}
	from := time.UnixMilli(*ch.Archived)
	recent, _, _ := c.ListChats(ctx, chat.ListOptions{From: from})
	if len(recent.List) != 1 || recent.List[0].ID != id {
		t.Errorf("list from = %+v", recent.List)
	}
	st := sim.Stats()
	if st.Effects != int64(len(sim.Effects())) || st.ByStatus[200] != st.Requests {
		t.Errorf("stats = %+v", st)
	}
}

// escape is the path escaping the client must use (url.PathEscape).
func escape(id string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~$&+:=@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func TestSimRefusals(t *testing.T) {
	c, _, base := newSim(t, chatsim.Config{Credentials: map[string][]string{testKey: {testSite}}})
	ctx := t.Context()
	tests := []struct {
		name      string
		call      func() error
		status    int
		code      int
		retryable bool
	}{
		{"unknown chat", func() error {
			_, _, err := c.SendMessage(ctx, "missing:42", chat.SendMessageRequest{Content: "x"})
			return err
		}, 404, 4004, false},
		{"unknown chat get", func() error { _, _, err := c.GetChat(ctx, "missing:"); return err }, 404, 4004, false},
		{"no credentials", func() error {
			_, err := c.Archive(ctx, "x", chat.WithCallCredentials(chat.Credentials{}))
			return err
		}, 401, 4000, false},
		{"unknown key", func() error {
			_, err := c.Archive(ctx, "x", chat.WithCallCredentials(chat.Credentials{APIKey: "nope", SiteToken: testSite}))
			return err
		}, 401, 4001, false},
		{"wrong site", func() error {
			_, err := c.Archive(ctx, "x", chat.WithCallCredentials(chat.Credentials{APIKey: testKey, SiteToken: "GSN-other"}))
			return err
		}, 403, 4001, false},
		{"empty content", func() error { _, _, err := c.LeaveNote(ctx, "x", chat.NoteRequest{}); return err }, 400, 4000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			ae := apiErr(t, err)
			if ae.StatusCode != tt.status || ae.Code != tt.code || chat.Retryable(err) != tt.retryable || !strings.HasPrefix(ae.Message, fmt.Sprintf("Error %d: ", tt.code)) {
				t.Errorf("APIError = %+v", ae)
			}
		})
	}
	// What the client refuses to send, the simulator refuses too.
	raw := []struct {
		method, path, body string
		status, code       int
	}{
		{"POST", "/chats/x/messages", `{"content":"x","from":"visitor"}`, 400, 4004},
		{"POST", "/chats/x/messages", `{"from":"agent"}`, 400, 4000},
		{"POST", "/chats/x/messages", `not json`, 400, 4003},
		{"GET", "/chats?limit=a,b", "", 400, 4003},
		{"GET", "/chats?limit=1,2,3", "", 400, 4003},
		{"GET", "/chats/x/feed?from=yesterday", "", 400, 4003},
		{"GET", "/chats/x/messages?limit=-1", "", 400, 4003},
	}
	for _, r := range raw {
		req, _ := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		q := req.URL.Query()
		q.Set("api_key", testKey)
		q.Set("site_token", testSite)
		req.URL.RawQuery = q.Encode()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != r.status || body.Code != r.code {
			t.Errorf("%s %s %s: %d %+v, want %d code %d", r.method, r.path, r.body, resp.StatusCode, body, r.status, r.code)
		}
	}
}

func TestSimRateLimit429(t *testing.T) {
	c, sim, _ := newSim(t, chatsim.Config{RatePerMinute: 2}, chat.WithRateLimit(false))
	ctx := t.Context()
	for i := range 2 {
		_, resp, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"})
		if err != nil || !resp.RateLimit.Known || resp.RateLimit.Limit != 2 || resp.RateLimit.Remaining != 1-i || resp.RateLimit.Cost != 1 {
			t.Fatalf("call %d: %+v, %v", i, resp, err)
		}
	}
	_, _, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"})
	ae := apiErr(t, err)
	d, ok := chat.RetryAfter(err)
	if ae.StatusCode != 429 || ae.Code != 4002 || !chat.Retryable(err) || !ok || d < time.Second || !ae.RateLimit.Known || ae.RateLimit.Remaining != 0 || ae.RateLimit.Full <= 0 {
		t.Errorf("429: %+v, retry after %v %v", ae, d, ok)
	}
	if st := sim.Stats(); st.RateLimited != 1 || st.Effects != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSimIdempotencyLedger(t *testing.T) {
	for _, honour := range []bool{false, true} {
		t.Run(fmt.Sprint("honour=", honour), func(t *testing.T) {
			c, sim, _ := newSim(t, chatsim.Config{HonourIdempotencyKey: honour})
			ctx := t.Context()
			m1, r1, err1 := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "once"}, chat.WithIdempotencyKey("cmd-1"))
			m2, r2, err2 := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "once"}, chat.WithIdempotencyKey("cmd-1"))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			wantEffects, wantReplays := 2, int64(0)
			if honour {
				wantEffects, wantReplays = 1, 1
				if m1.ID != m2.ID || string(r1.Body) != string(r2.Body) {
					t.Errorf("replay differs: %s vs %s", r1.Body, r2.Body)
				}
			} else if m1.ID == m2.ID {
				t.Error("same message ID without the ledger")
			}
			if n := len(sim.Effects()); n != wantEffects {
				t.Errorf("effects = %d, want %d", n, wantEffects)
			}
			if st := sim.Stats(); st.IdempotentReplays != wantReplays {
				t.Errorf("replays = %d", st.IdempotentReplays)
			}
			// Switching at run time.
			sim.SetHonourIdempotencyKey(!honour)
		})
	}
}

func TestSimFaults(t *testing.T) {
	ctx := t.Context()
	t.Run("error rate", func(t *testing.T) {
		c, sim, _ := newSim(t, chatsim.Config{Faults: chatsim.Faults{ErrorRate: 1}})
		_, _, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"})
		ae := apiErr(t, err)
		if !chat.Retryable(err) || ae.Code != 5000 || (ae.StatusCode != 500 && ae.StatusCode != 503) || len(sim.Effects()) != 0 {
			t.Errorf("err = %v, effects %d", err, len(sim.Effects()))
		}
		sim.SetFaults(chatsim.Faults{}) // fix the simulator
		if _, _, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"}); err != nil {
			t.Errorf("after fix: %v", err)
		}
	})
	t.Run("drop after effect", func(t *testing.T) {
		c, sim, _ := newSim(t, chatsim.Config{Faults: chatsim.Faults{DropRate: 1}})
		// A first call that succeeds, so the dropped one runs on a reused
		// connection, where net/http would replay a keyed POST by itself.
		sim.SetFaults(chatsim.Faults{})
		c.GetChat(ctx, "x")
		sim.SetFaults(chatsim.Faults{DropRate: 1})
		_, resp, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "dropped"})
		var te *chat.TransportError
		if !errors.As(err, &te) || !chat.Retryable(err) || resp != nil {
			t.Errorf("err = %v (%T)", err, err)
		}
		if e := sim.Effects(); len(e) != 1 || e[0].Content != "dropped" {
			t.Errorf("effects = %+v, want exactly the one dropped call", e)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		c, sim, _ := newSim(t, chatsim.Config{Faults: chatsim.Faults{TruncateRate: 1}})
		_, _, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"})
		if !chat.Retryable(err) || len(sim.Effects()) != 1 || sim.Stats().Truncated != 1 {
			t.Errorf("err = %v, effects %d", err, len(sim.Effects()))
		}
	})
	t.Run("hang until client timeout", func(t *testing.T) {
		c, sim, _ := newSim(t, chatsim.Config{Faults: chatsim.Faults{HangRate: 1}}, chat.WithTimeout(50*time.Millisecond))
		_, _, err := c.SendMessage(ctx, "x", chat.SendMessageRequest{Content: "x"})
		if !chat.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) || len(sim.Effects()) != 0 {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		c, _, _ := newSim(t, chatsim.Config{Faults: chatsim.Faults{Latency: time.Millisecond, LatencyJitter: time.Millisecond}})
		if _, err := c.Archive(ctx, "x"); err != nil {
			t.Error(err)
		}
	})
}

func TestSimInspectionEndpoints(t *testing.T) {
	c, sim, base := newSim(t, chatsim.Config{})
	c.SendMessage(t.Context(), "a/b", chat.SendMessageRequest{Content: "x"})
	get := func(path string, v any) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var effects []chatsim.Effect
	get("/_sim/effects", &effects)
	if len(effects) != 1 || effects[0].ChatID != "a/b" || effects[0].Path != "/chat/v1/chats/a%2Fb/messages" {
		t.Errorf("effects = %+v", effects)
	}
	var st chatsim.Stats
	get("/_sim/stats", &st)
	if st.Effects != 1 || st.ByStatus[200] != 1 {
		t.Errorf("stats = %+v", st)
	}
	resp, err := http.Post(base+"/_sim/faults", "application/json", strings.NewReader(`{"error_rate":1,"latency":"1ms"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("faults: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.Archive(t.Context(), "x"); !chat.Retryable(err) {
		t.Errorf("faults not applied: %v", err)
	}
	resp, _ = http.Post(base+"/_sim/faults", "application/json", strings.NewReader(`{"error_rate":2}`))
	if resp.StatusCode != 400 {
		t.Errorf("invalid faults accepted: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = http.Post(base+"/_sim/reset", "application/json", nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if len(sim.Effects()) != 0 || sim.Stats().Requests != 0 {
		t.Error("reset kept state")
	}
}

func TestSimIterators(t *testing.T) {
	c, sim, _ := newSim(t, chatsim.Config{})
	sim.Seed(600, 1)
	ctx := t.Context()
	seen := map[string]bool{}
	var last int64 = 1 << 62
	for ch, err := range c.AllChats(ctx, chat.ListOptions{Count: 250}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[ch.ID] {
			t.Fatalf("duplicate %s", ch.ID)
		}
		seen[ch.ID] = true
		if ch.Latest.Timestamp > last {
			t.Fatalf("not newest first at %s", ch.ID)
		}
		last = ch.Latest.Timestamp
	}
	if len(seen) != 600 || sim.Stats().Requests != 3 {
		t.Errorf("chats = %d in %d requests", len(seen), sim.Stats().Requests)
	}
	n := 0
	for range c.AllChats(ctx, chat.ListOptions{}) {
		n++
		if n == 150 {
			break // stopping early must not fetch more
		}
	}
	sim.Seed(1, 30) // seed-0000 now has 30 messages, a note, no archive
	var feed []chat.FeedItem
	for it, err := range c.AllFeed(ctx, "seed-0000", chat.ListOptions{Count: 7}) {
		if err != nil {
			t.Fatal(err)
		}
		feed = append(feed, it)
	}
	if len(feed) != 33 { // from the first seed 1 message + 1 note, then 30 + 1
		t.Errorf("feed items = %d", len(feed))
	}
	for _, err := range c.AllChats(ctx, chat.ListOptions{}, chat.WithCallCredentials(chat.Credentials{})) {
		if apiErr(t, err).StatusCode != 401 {
			t.Errorf("err = %v", err)
		}
	}
}

// TestLimiterLearnsBudget runs a burst at concurrency 64 against a small
// budget (200 units/s, 50 in the bucket) and checks that the adaptive
// limiter keeps 429s under 1%.
func TestLimiterLearnsBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about two seconds")
	}
	var waits atomic.Int64
	obs := &countingObserver{waits: &waits}
	c, sim, _ := newSim(t, chatsim.Config{RatePerMinute: 50, RateWindow: 250 * time.Millisecond}, chat.WithObserver(obs))
	const calls, workers = 400, 64
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= calls {
				if _, _, err := c.SendMessage(t.Context(), "burst", chat.SendMessageRequest{Content: "x"}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	st := sim.Stats()
	if st.RateLimited*100 >= calls {
		t.Errorf("429 on %d of %d calls", st.RateLimited, calls)
	}
	if st.Effects+st.RateLimited != calls || failed.Load() != st.RateLimited {
		t.Errorf("stats = %+v, failed %d", st, failed.Load())
	}
	if waits.Load() == 0 {
		t.Error("limiter never waited")
	}
	t.Logf("429s: %d of %d; limiter waits: %d", st.RateLimited, calls, waits.Load())
}

type countingObserver struct{ waits *atomic.Int64 }

func (o *countingObserver) APICall(string, int, time.Duration, error) {}
func (o *countingObserver) LimiterWait(time.Duration)                 { o.waits.Add(1) }

// TestLimiterSharedKey: two clients (two worker processes) share one API key
// and budget; each slows down as Remaining falls, so together they stay
// under it.
func TestLimiterSharedKey(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about two seconds")
	}
	c1, sim, url := newSim(t, chatsim.Config{RatePerMinute: 50, RateWindow: 250 * time.Millisecond})
	c2, err := chat.New(chat.WithBaseURL(url), chat.WithCredentials(chat.Credentials{APIKey: testKey, SiteToken: testSite}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.CloseIdleConnections)
	const calls = 400
	var wg sync.WaitGroup
	var next atomic.Int64
	for i := range 64 {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		wg.Go(func() {
			for next.Add(1) <= calls {
				c.Archive(t.Context(), "shared")
			}
		})
	}
	wg.Wait()
	st := sim.Stats()
	t.Logf("429s: %d of %d", st.RateLimited, calls)
	if st.RateLimited*100 >= calls {
		t.Errorf("429 on %d of %d calls", st.RateLimited, calls)
	}
}
