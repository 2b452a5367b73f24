package export_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/export"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// env is a simulator seeded with conversations and a client for it.
type env struct {
	sim    *chatsim.Server
	client *chat.Client
	chats  int
	msgs   int
	added  map[string][]string // item ids added by the test, per chat
}

func newEnv(t *testing.T, cfg chatsim.Config, chats, msgs int, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := chatsim.New(cfg)
	sim.Seed(chats, msgs)
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	c, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "GSN-1-S"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return &env{sim: sim, client: c, chats: chats, msgs: msgs, added: map[string][]string{}}
}

func chatID(i int) string { return fmt.Sprintf("seed-%04d", i) }

// want is every item id of a chat: the seeded ones (see chatsim.Seed) and
// those the test added.
func (e *env) want(i int) []string {
	id := chatID(i)
	var ids []string
	for m := range e.msgs {
		ids = append(ids, fmt.Sprintf("%s-m%04d", id, m))
	}
	ids = append(ids, id+"-note")
	if i%5 == 4 {
		ids = append(ids, id+"-archive")
	}
	return append(ids, e.added[id]...)
}

func (e *env) send(t *testing.T, i int, content string) {
	t.Helper()
	m, _, err := e.client.SendMessage(t.Context(), chatID(i), chat.SendMessageRequest{Content: content, From: chat.FromAgent})
	if err != nil {
		t.Fatal(err)
	}
	e.added[chatID(i)] = append(e.added[chatID(i)], m.ID)
}

type item struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Private   bool   `json:"private"`
	Type      string `json:"type"`
}

type line struct {
	ChatID   string         `json:"chat_id"`
	After    *export.Cursor `json:"after"`
	Through  export.Cursor  `json:"through"`
	Messages []item         `json:"messages"`
	Notes    []item         `json:"notes"`
	Events   []item         `json:"events"`
}

func (l line) ids() []string {
	var ids []string
	for _, list := range [][]item{l.Messages, l.Notes, l.Events} {
		for _, it := range list {
			ids = append(ids, it.ID)
		}
	}
	return ids
}

func decodeLines(t *testing.T, r io.Reader, where string) []line {
	t.Helper()
	var out []line
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: line %d is not JSON: %v: %q", where, len(out)+1, err, sc.Text())
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readDir returns the lines of every export file in dir, by file name.
func readDir(t *testing.T, dir string) map[string][]line {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "export-*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]line{}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = decodeLines(t, f, p)
		f.Close()
	}
	return out
}

// checkComplete checks that the lines hold every item of every chat exactly
// once, and that each chat's lines chain (each continues where the last
// ended).
func (e *env) checkComplete(t *testing.T, lines []line) {
	t.Helper()
	byChat := map[string][]line{}
	for _, l := range lines {
		byChat[l.ChatID] = append(byChat[l.ChatID], l)
	}
	if len(byChat) != e.chats {
		t.Errorf("lines for %d chats, want %d", len(byChat), e.chats)
	}
	for i := range e.chats {
		ls := byChat[chatID(i)]
		var got []string
		var prev *export.Cursor
		for _, l := range ls {
			if !sameCursor(l.After, prev) {
				t.Errorf("%s: a line continues from %+v, want %+v (the previous line's end)", chatID(i), l.After, prev)
			}
			th := l.Through
			prev = &th
			got = append(got, l.ids()...)
		}
		want := e.want(i)
		if len(got) != len(want) {
			t.Errorf("%s: %d items exported, want %d (%v vs %v)", chatID(i), len(got), len(want), got, want)
			continue
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: items %v, want %v", chatID(i), got, want)
		}
	}
}

func sameCursor(a, b *export.Cursor) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.TS == b.TS && slices.Equal(a.IDs, b.IDs)
}

// TestFileExportKilledResumedIncremental exports 2,000 conversations with
// the API's rate limit on (a budget of 600 calls per half second, so the
// limiter has to pace the run): a run is stopped after 700 conversations and
// then treated as killed without warning (its checkpoint deleted, a torn
// half line left at the end of its file); the next run continues the same
// file with nothing doubled or missing; a third run after new messages in
// five conversations exports only those.
func TestFileExportKilledResumedIncremental(t *testing.T) {
	e := newEnv(t, chatsim.Config{RatePerMinute: 600, RateWindow: 500 * time.Millisecond}, 2000, 3, nil)
	dir := t.TempDir()
	open := func() *export.Exporter {
		f, err := export.OpenFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		return &export.Exporter{Client: e.client, Sink: f, Checkpoints: f, Concurrency: 4}
	}

	// Run 1, stopped after 700 conversations.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var lastProgress export.Progress
	sum1, err := open().Run(ctx, export.Options{Progress: func(p export.Progress) {
		lastProgress = p
		if p.Done >= 700 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || !sum1.Interrupted {
		t.Fatalf("stopped run: err %v, interrupted %v; want context.Canceled", err, sum1.Interrupted)
	}
	if lastProgress.Total != 2000 || sum1.Exported < 700 || sum1.Exported >= 2000 {
		t.Fatalf("stopped run: progress %+v, summary %+v", lastProgress, sum1)
	}
	partials, _ := filepath.Glob(filepath.Join(dir, "export-*.jsonl.partial"))
	if len(partials) != 1 {
		t.Fatalf("after the stopped run: partial files %v, want one", partials)
	}
	// Make it a kill: no checkpoint at all, and a line cut short.
	if err := os.Remove(filepath.Join(dir, ".export-checkpoint.json")); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(partials[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(`{"chat_id":"seed-1999","after":null,"through":{"ts":17`)
	fh.Close()

	// Run 2 continues.
	sum2, err := open().Run(t.Context(), export.Options{})
	if err != nil {
		t.Fatalf("resumed run: %v (%+v)", err, sum2)
	}
	if sum1.Exported+sum2.Exported != 2000 || sum2.Unchanged != sum1.Exported {
		t.Errorf("exported %d then %d (%d unchanged): want 2000 in all, the first run's not again", sum1.Exported, sum2.Exported, sum2.Unchanged)
	}
	files := readDir(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v: want the one run's file, finished", keys(files))
	}
	var all []line
	for name, ls := range files {
		if strings.HasSuffix(name, ".partial") || "file://"+filepath.Join(dir, name) != sum2.Location {
			t.Errorf("file %s, summary location %s", name, sum2.Location)
		}
		all = append(all, ls...)
	}
	if len(all) != 2000 {
		t.Errorf("%d lines, want one per conversation", len(all))
	}
	e.checkComplete(t, all)

	// Run 3: only what changed.
	changed := []int{3, 250, 999, 1500, 1999}
	for _, i := range changed {
		e.send(t, i, "new message for "+chatID(i))
	}
	e.send(t, 999, "and another")
	before := e.sim.Stats().Requests
	sum3, err := open().Run(t.Context(), export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum3.Exported != len(changed) || sum3.Unchanged != 2000-len(changed) || sum3.Messages != len(changed)+1 {
		t.Errorf("incremental run: %+v; want %d exported with %d messages", sum3, len(changed), len(changed)+1)
	}
	// Listing 2,000 chats takes 9 pages, the catch-up one, then a feed call
	// per changed chat: unchanged chats cost nothing.
	if calls := e.sim.Stats().Requests - before; calls > 9+1+int64(len(changed))+3 {
		t.Errorf("incremental run made %d API calls", calls)
	}
	files = readDir(t, dir)
	if len(files) != 2 {
		t.Fatalf("files %v: want a second run's file", keys(files))
	}
	third := files[strings.TrimPrefix(sum3.Location, "file://"+dir+string(filepath.Separator))]
	if len(third) != len(changed) {
		t.Fatalf("the incremental run's file has %d lines, want %d", len(third), len(changed))
	}
	for _, l := range third {
		if !slices.Equal(l.ids(), e.added[l.ChatID]) || l.After == nil {
			t.Errorf("%s: incremental line holds %v after %+v, want just %v", l.ChatID, l.ids(), l.After, e.added[l.ChatID])
		}
	}
	all = nil
	for _, name := range keys(files) { // oldest run first
		all = append(all, files[name]...)
	}
	e.checkComplete(t, all)

	st := e.sim.Stats()
	t.Logf("%d API calls, %d answered 429", st.Requests, st.RateLimited)
	if st.RateLimited*50 > st.Requests {
		t.Errorf("%d of %d calls were rate limited: the client should keep under the budget", st.RateLimited, st.Requests)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestSingleFileSinceUntil appends to one .jsonl file; --until exports the
// first chats only, a run without it continues from their checkpoints.
func TestSingleFileSinceUntil(t *testing.T) {
	e := newEnv(t, chatsim.Config{}, 10, 2, nil)
	out := filepath.Join(t.TempDir(), "archive.jsonl")
	run := func(opt export.Options) export.Summary {
		t.Helper()
		f, err := export.OpenFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := (&export.Exporter{Client: e.client, Sink: f, Checkpoints: f}).Run(t.Context(), opt)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	// Seeded chat i's items lie in the minute starting base + i minutes.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if s := run(export.Options{Until: base.Add(5 * time.Minute)}); s.Exported != 5 || s.Location != "file://"+out {
		t.Errorf("--until: %+v, want chats 0-4 in %s", s, out)
	}
	if s := run(export.Options{Since: base.Add(8 * time.Minute)}); s.Exported != 2 {
		t.Errorf("--since: %+v, want chats 8 and 9", s)
	}
	if s := run(export.Options{}); s.Exported != 3 || s.Unchanged != 7 {
		t.Errorf("no bounds: %+v, want the three left", s)
	}
	if _, err := os.Stat(out + ".checkpoint.json"); err != nil {
		t.Errorf("checkpoint beside the file: %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.checkComplete(t, decodeLines(t, f, out))
}

// TestPartialFailure: a conversation whose feed keeps failing is listed,
// the run's error wraps ErrPartial, and the next run exports it.
func TestPartialFailure(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	e := newEnv(t, chatsim.Config{}, 20, 2, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if broken.Load() && strings.Contains(r.URL.Path, "/chats/seed-0007/feed") {
				http.Error(w, `{"code":5000,"message":"Error 5000: down"}`, http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	dir := t.TempDir()
	run := func() (export.Summary, error) {
		f, err := export.OpenFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		return (&export.Exporter{Client: e.client, Sink: f, Checkpoints: f, MaxAttempts: 2}).Run(t.Context(), export.Options{})
	}
	sum, err := run()
	if !errors.Is(err, export.ErrPartial) || len(sum.Failed) != 1 || sum.Failed[0].ChatID != "seed-0007" || sum.Exported != 19 {
		t.Fatalf("err %v, summary %+v: want seed-0007 failed, 19 exported", err, sum)
	}
	if !strings.Contains(sum.Failed[0].Error, "503") {
		t.Errorf("failure %q does not say what the API answered", sum.Failed[0].Error)
	}
	broken.Store(false)
	if sum, err = run(); err != nil || sum.Exported != 1 {
		t.Fatalf("second run: %v %+v: want seed-0007 exported", err, sum)
	}
	var all []line
	files := readDir(t, dir)
	for _, name := range keys(files) {
		all = append(all, files[name]...)
	}
	e.checkComplete(t, all)
}

// lossyCheckpoints forgets the checkpoints of the first n saves, as if the
// process died after storing each line and before its checkpoint.
type lossyCheckpoints struct {
	export.Checkpoints
	n atomic.Int32
}

func (l *lossyCheckpoints) Save(ctx context.Context, chatID string, c export.Cursor) error {
	if l.n.Add(-1) >= 0 {
		return nil
	}
	return l.Checkpoints.Save(ctx, chatID, c)
}

// TestObjectStore exports to an Object Store with checkpoints in KV: lines
// stored without their checkpoint and a stopped run are redone without a
// second object; new messages make one new object per changed chat; and
// the queue's ExportChat says where a whole conversation went.
func TestObjectStore(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	e := newEnv(t, chatsim.Config{}, 300, 2, nil)
	ctx := t.Context()
	store, err := export.OpenObjectStore(ctx, js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := export.OpenKV(ctx, js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lossyCheckpoints{Checkpoints: kv}
	lossy.n.Store(40)
	ex := &export.Exporter{Client: e.client, Sink: store, Checkpoints: lossy}

	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sum, err := ex.Run(stopCtx, export.Options{Progress: func(p export.Progress) {
		if p.Done >= 100 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v", err)
	}
	first := sum.Exported
	sum, err = ex.Run(ctx, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Exported != 300-first+40 || sum.Location != "nats-object://CHAT_EXPORTS/chats/" {
		t.Errorf("resumed run: %+v; want the %d left and the 40 without checkpoints again", sum, 300-first)
	}

	os, err := js.ObjectStore(ctx, export.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	readAll := func() map[string][]line {
		t.Helper()
		infos, err := os.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]line{}
		for _, info := range infos {
			if !strings.HasPrefix(info.Name, "chats/") {
				continue
			}
			b, err := os.GetBytes(ctx, info.Name)
			if err != nil {
				t.Fatal(err)
			}
			out[info.Name] = decodeLines(t, strings.NewReader(string(b)), info.Name)
		}
		return out
	}
	objs := readAll()
	if len(objs) != 300 {
		t.Errorf("%d objects, want one per chat", len(objs))
	}
	var all []line
	for name, ls := range objs {
		if len(ls) != 1 || name != export.ObjectName(ls[0].ChatID, nil) {
			t.Errorf("object %s holds %d lines", name, len(ls))
		}
		all = append(all, ls...)
	}
	e.checkComplete(t, all)

	for _, i := range []int{0, 42, 299} {
		e.send(t, i, "hello again")
	}
	if sum, err = ex.Run(ctx, export.Options{}); err != nil || sum.Exported != 3 || sum.Unchanged != 297 {
		t.Fatalf("incremental run: %v %+v", err, sum)
	}
	objs = readAll()
	if len(objs) != 303 {
		t.Errorf("%d objects, want 303", len(objs))
	}
	all = nil
	for _, name := range keys(objs) { // within a chat, names sort by cursor
		all = append(all, objs[name]...)
	}
	e.checkComplete(t, all)

	// On demand, for the queue: the whole conversation, wherever the runs are.
	res, err := ex.ExportChat(ctx, "", chatID(42))
	if err != nil {
		t.Fatal(err)
	}
	var r export.ChatExport
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	name, ok := strings.CutPrefix(r.Location, "nats-object://CHAT_EXPORTS/")
	if !ok || !strings.HasPrefix(name, "requests/seed-0042/") || r.Messages != 3 || r.Notes != 1 {
		t.Fatalf("ExportChat: %s", res)
	}
	b, err := os.GetBytes(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	ls := decodeLines(t, strings.NewReader(string(b)), name)
	if len(ls) != 1 || len(ls[0].ids()) != len(e.want(42)) {
		t.Errorf("requested export %s: %+v", name, ls)
	}
	// A v2 project's export goes to its project's part of the requests
	// area: the same chat ID in another project does not replace it.
	res, err = ex.ExportChat(ctx, "acme", chatID(42))
	if err != nil {
		t.Fatal(err)
	}
	var rp export.ChatExport
	if err := json.Unmarshal(res, &rp); err != nil || !strings.HasPrefix(rp.Location, "nats-object://CHAT_EXPORTS/requests/acme/seed-0042/") {
		t.Fatalf("ExportChat for project acme: %s, %v", res, err)
	}
	var _ jetstream.ObjectStore = os
}

// TestExportChatFile: the queue's export to a directory target, and an API
// refusal that keeps its class.
func TestExportChatFile(t *testing.T) {
	e := newEnv(t, chatsim.Config{}, 3, 4, nil)
	dir := t.TempDir()
	f, err := export.OpenFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	ex := &export.Exporter{Client: e.client, Sink: f}
	res, err := ex.ExportChat(t.Context(), "", chatID(1))
	if err != nil {
		t.Fatal(err)
	}
	var r export.ChatExport
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	p, ok := strings.CutPrefix(r.Location, "file://")
	if !ok || filepath.Dir(p) != filepath.Join(dir, "requests") || r.Messages != 4 || r.Notes != 1 || r.ChatID != chatID(1) {
		t.Fatalf("ExportChat: %s", res)
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if ls := decodeLines(t, fh, p); len(ls) != 1 || len(ls[0].ids()) != 5 {
		t.Errorf("%s: %+v", p, ls)
	}
	_, err = ex.ExportChat(t.Context(), "", "missing:someone")
	if !errors.Is(err, chat.ErrPermanent) || execute.ClassOf(err) != contract.ClassPermanent {
		t.Errorf("unknown chat: %v, want a permanent error", err)
	}
}

// TestObjectNamesUseTheChatToken: names carry the contract's chat token.
func TestObjectNamesUseTheChatToken(t *testing.T) {
	for _, id := range []string{"abc123", "email:jo@example.com", "a/b c%ü", "..x"} {
		want := "chats/" + contract.Token(id) + "/0000000000000.jsonl"
		if got := export.ObjectName(id, nil); got != want {
			t.Errorf("ObjectName(%q) = %q, want %q", id, got, want)
		}
	}
	a := export.ObjectName("x", &export.Cursor{TS: 5, IDs: []string{"a"}})
	b := export.ObjectName("x", &export.Cursor{TS: 5, IDs: []string{"a", "b"}})
	if a == b || !strings.HasPrefix(a, "chats/x/0000000000005-") {
		t.Errorf("names %q and %q: want distinct names for distinct cursors", a, b)
	}
}
