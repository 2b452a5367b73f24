package console_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/console"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/project"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// A fetch that dlq and actions.Status end early keeps a timer
		// goroutine in nats.go until its wait expires.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*pullConsumer).fetch.func1"),
		// The browser test's HTTP connections close after the test ends.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// fixture is a provisioned deployment with dead letters, a schedule and a
// project state bucket, and a console over it.
type fixture struct {
	t   *testing.T
	js  jetstream.JetStream
	url string
	hc  *http.Client
}

const secretText = "customer words nobody else may read"

func newFixture(t *testing.T, mutate func(*console.Config)) *fixture {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	seed(t, js)
	return &fixture{t: t, js: js, url: serveConsole(t, js, mutate), hc: &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// serveConsole serves a console on js, its Config changed by mutate, until
// the test ends, and returns its URL.
func serveConsole(t *testing.T, js jetstream.JetStream, mutate func(*console.Config)) string {
	t.Helper()
	cfg := console.Config{JS: js}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	return hs.URL
}

// seed stores what a worker and an app would have: four dead letters (one
// past its deadline, one carrying a credential header), a schedule and the
// project bucket.
func seed(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := t.Context()
	if _, err := consumer.Provision(ctx, js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := project.Open(ctx, js, project.Config{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, d := range []struct {
		id, typ, chat string
		class         actions.Class
		notAfter      time.Time
	}{
		{"a-1", "send", "chat-a", contract.ClassExhausted, time.Time{}},
		{"a-2", "note", "chat-a", contract.ClassExhausted, time.Time{}},
		{"b-1", "send", "missing:b", contract.ClassPermanent, time.Time{}},
		{"e-1", "send", "chat-e", contract.ClassExpired, now.Add(-time.Hour)},
	} {
		cmd, _ := json.Marshal(actions.Command{ID: d.id, Type: actions.Type(d.typ), ChatID: d.chat, Content: secretText, NotAfter: d.notAfter})
		rec, _ := json.Marshal(actions.DeadLetter{
			Command: cmd, Subject: actions.Subjects{}.Command(actions.Type(d.typ), d.chat),
			Headers:  map[string][]string{"Authorization": {"Bearer sk-live-123"}, "Nats-Msg-Id": {d.id}},
			Error:    actions.ErrorInfo{Class: d.class, Message: "the API said no to " + d.id},
			Attempts: 3, Worker: "test/1", DeadAt: now,
		})
		if _, err := js.Publish(ctx, actions.Subjects{}.DeadLetter(actions.Type(d.typ), contract.Token(d.chat)), rec, jetstream.WithMsgID(fmt.Sprintf("%s:%d", d.id, 100+i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := actions.ScheduleAt(ctx, js, actions.Note{ID: "later-1", ChatID: "chat-s", Content: "later"}, now.Add(time.Hour), actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) do(method, path string, form url.Values, hdr ...string) (int, string, http.Header) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (f *fixture) get(path string) string {
	f.t.Helper()
	code, body, _ := f.do("GET", path, nil)
	if code != http.StatusOK {
		f.t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

func (f *fixture) deadLetters() []dlq.Entry {
	f.t.Helper()
	q, err := dlq.Open(f.t.Context(), f.js, dlq.Config{})
	if err != nil {
		f.t.Fatal(err)
	}
	sel, err := q.List(f.t.Context(), dlq.Filter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return sel.Entries
}

func (f *fixture) audit() []audit.Entry {
	f.t.Helper()
	l, err := audit.Open(f.t.Context(), f.js, audit.Config{})
	if err != nil {
		f.t.Fatal(err)
	}
	list, err := l.Recent(f.t.Context(), 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

func TestPagesShowWhatIsThere(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ path, want string }{
		{"/", "Dead letters, last 24 h"},
		{"/", "exhausted"},
		{"/dlq", "a-1"},
		{"/dlq?class=permanent", "b-1"},
		{"/dlq/1", "the API said no to a-1"},
		{"/dlq/e-1", "past"},
		{"/schedules", "later-1"},
		{"/command?id=a-1", "dead-lettered"},
		{"/command?id=later-1", "scheduled"},
		{"/projects", "Every project is active"},
		{"/audit", "No operator action"},
	} {
		if body := f.get(tc.path); !strings.Contains(body, tc.want) {
			t.Errorf("GET %s does not say %q:\n%s", tc.path, tc.want, body)
		}
	}
	if body := f.get("/dlq?class=permanent"); strings.Contains(body, "a-1") {
		t.Errorf("the class filter let a-1 through")
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/dlq/999", http.StatusNotFound},
		{"/dlq?since=yesterday-ish", http.StatusBadRequest},
		{"/command?id=nobody", http.StatusNotFound},
		{"/nope", http.StatusNotFound},
	} {
		if code, _, _ := f.do("GET", tc.path, nil); code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, code, tc.code)
		}
	}
}

func TestNeverShowsCredentialsAndHidesContentWhenAsked(t *testing.T) {
	for _, hide := range []bool{false, true} {
		f := newFixture(t, func(c *console.Config) { c.HideContent = hide })
		body := f.get("/dlq/1") + f.get("/command?id=a-1")
		if strings.Contains(body, "sk-live-123") {
			t.Errorf("hide=%v: a credential header is on the page", hide)
		}
		if shown := strings.Contains(body, secretText); shown == hide {
			t.Errorf("hide=%v: customer text shown=%v", hide, shown)
		}
	}
}

func TestReplayRedirectsAndAudits(t *testing.T) {
	f := newFixture(t, func(c *console.Config) { c.Auth.Users = map[string]string{"alice": "pw"} })
	basic := "Basic " + "YWxpY2U6cHc=" // alice:pw
	// Dry run first: nothing changes, nothing is audited.
	code, _, h := f.do("POST", "/dlq/replay", url.Values{"seq": {"1"}, "scope": {"selected"}, "dry_run": {"1"}}, "Authorization", basic)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "would+replay+1") {
		t.Fatalf("dry run: %d %s", code, h.Get("Location"))
	}
	if n := len(f.deadLetters()); n != 4 {
		t.Fatalf("a dry run changed the dead letters: %d left", n)
	}
	// The expired one, replayed with a new deadline, and a-1.
	code, _, h = f.do("POST", "/dlq/replay", url.Values{"seq": {"1", "4"}, "scope": {"selected"}, "not_after": {"1h"}, "rate": {"0"}}, "Authorization", basic)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "replayed+2+of+2") {
		t.Fatalf("replay: %d %s", code, h.Get("Location"))
	}
	left := f.deadLetters()
	if len(left) != 2 || left[0].ID != "a-2" || left[1].ID != "b-1" {
		t.Fatalf("after replay: %+v", left)
	}
	st, err := f.js.Stream(t.Context(), contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(t.Context(), actions.Subjects{}.Command("send", "chat-e"))
	if err != nil {
		t.Fatal(err)
	}
	var cmd actions.Command
	if err := json.Unmarshal(m.Data, &cmd); err != nil || !cmd.NotAfter.After(time.Now()) {
		t.Fatalf("the expired command was republished without a new deadline: %s (%v)", m.Data, err)
	}
	a := f.audit()
	if len(a) != 1 || a[0].Who != "alice" || a[0].Action != audit.Replay || a[0].Count != 2 || a[0].Via != "console" {
		t.Fatalf("audit: %+v", a)
	}
	// Replay all matching a filter.
	code, _, h = f.do("POST", "/dlq/replay", url.Values{"class": {"permanent"}, "scope": {"all"}, "rate": {"0"}}, "Authorization", basic)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "replayed+1+of+1") {
		t.Fatalf("replay all: %d %s", code, h.Get("Location"))
	}
}

func TestPurgeAsksFirst(t *testing.T) {
	f := newFixture(t, nil)
	if body := f.get("/dlq/purge?class=exhausted&scope=all"); !strings.Contains(body, "Delete 2 dead letter") {
		t.Fatalf("confirmation page:\n%s", body)
	}
	if code, _, _ := f.do("POST", "/dlq/purge", url.Values{"class": {"exhausted"}, "scope": {"all"}}); code != http.StatusBadRequest {
		t.Fatalf("a purge without confirm: %d, want 400", code)
	}
	if n := len(f.deadLetters()); n != 4 {
		t.Fatalf("an unconfirmed purge deleted: %d left", n)
	}
	code, _, h := f.do("POST", "/dlq/purge", url.Values{"class": {"exhausted"}, "scope": {"all"}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "deleted+2") {
		t.Fatalf("purge: %d %s", code, h.Get("Location"))
	}
	if n := len(f.deadLetters()); n != 2 {
		t.Fatalf("after purge: %d left, want 2", n)
	}
	if a := f.audit(); len(a) != 1 || a[0].Action != audit.Purge || a[0].Count != 2 || !strings.HasPrefix(a[0].Who, "anonymous@") {
		t.Fatalf("audit: %+v", a)
	}
}

func TestCancelSchedule(t *testing.T) {
	f := newFixture(t, nil)
	code, _, h := f.do("POST", "/schedules/cancel", url.Values{"id": {"later-1"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "cancelled+1") {
		t.Fatalf("cancel: %d %s", code, h.Get("Location"))
	}
	if list, err := actions.ListSchedules(t.Context(), f.js, actions.Subjects{}); err != nil || len(list) != 0 {
		t.Fatalf("schedules after cancel: %v %v", list, err)
	}
	if a := f.audit(); len(a) != 1 || a[0].Action != audit.Cancel || a[0].Which != "later-1" {
		t.Fatalf("audit: %+v", a)
	}
}

// Run now publishes the schedule's command under its id and removes a
// one-shot schedule; a recurring one fires once and keeps its series. Both
// are audited. (No worker runs here: the browser test sees the command
// succeed.)
func TestRunScheduleNow(t *testing.T) {
	f := newFixture(t, nil)
	series, err := actions.ScheduleRecurring(t.Context(), f.js, actions.Send{ID: "daily-1", ChatID: "chat-d", Content: "digest"}, actions.Recurrence{Every: 24 * time.Hour}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, h := f.do("POST", "/schedules/run", url.Values{"id": {"later-1"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "published+note+later-1+now+and+removed+its+schedule") {
		t.Fatalf("run now: %d %s", code, h.Get("Location"))
	}
	code, _, h = f.do("POST", "/schedules/run", url.Values{"id": {"daily-1"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "the+series+goes+on") {
		t.Fatalf("run now of a series: %d %s", code, h.Get("Location"))
	}
	st, err := f.js.Stream(t.Context(), contract.DefaultCommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	for subject, prefix := range map[string]string{actions.Subjects{}.Command("note", "chat-s"): "later-1", actions.Subjects{}.Command("send", "chat-d"): "daily-1@"} {
		m, err := st.GetLastMsgForSubject(t.Context(), subject)
		if err != nil {
			t.Fatalf("nothing published to %s: %v", subject, err)
		}
		if id := m.Header.Get("Nats-Msg-Id"); !strings.HasPrefix(id, prefix) {
			t.Errorf("%s: Nats-Msg-Id %q, want %s…", subject, id, prefix)
		}
	}
	list, err := actions.ListSchedules(t.Context(), f.js, actions.Subjects{})
	if err != nil || len(list) != 1 || list[0].ID != "daily-1" || !list[0].At.Equal(series.At) {
		t.Fatalf("schedules after run now: %+v %v; want daily-1 next at %s", list, err, series.At)
	}
	a := f.audit()
	if len(a) != 2 || a[0].Action != audit.RunNow || a[0].Which != "daily-1" || a[1].Which != "later-1" || a[1].Via != "console" {
		t.Fatalf("audit: %+v", a)
	}
	// Gone now: said, and nothing audited.
	code, _, h = f.do("POST", "/schedules/run", url.Values{"id": {"later-1"}})
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "no+pending+schedule") || len(f.audit()) != 2 {
		t.Fatalf("run now again: %d %s", code, h.Get("Location"))
	}
}

func TestPauseAndResume(t *testing.T) {
	f := newFixture(t, func(c *console.Config) { c.Auth.Header = "X-Forwarded-User" })
	as := []string{"X-Forwarded-User", "bob"}
	code, _, h := f.do("POST", "/projects/pause", url.Values{"project": {"acme"}}, as...)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "say+why") {
		t.Fatalf("pause without a reason: %d %s", code, h.Get("Location"))
	}
	f.do("POST", "/projects/pause", url.Values{"project": {"acme"}, "reason": {"provider incident"}}, as...)
	store, err := project.Bind(t.Context(), f.js, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Get(t.Context(), "acme")
	if err != nil || st.Operator == nil || st.Operator.By != "bob" || st.Operator.Reason != "provider incident" {
		t.Fatalf("after pause: %+v %v", st, err)
	}
	f.do("POST", "/projects/resume", url.Values{"project": {"acme"}}, as...)
	if st, err := store.Get(t.Context(), "acme"); err != nil || !st.Active() {
		t.Fatalf("after resume: %+v %v", st, err)
	}
	a := f.audit()
	if len(a) != 2 || a[0].Action != audit.Resume || a[1].Action != audit.Pause || a[1].Detail != "provider incident" || a[1].Who != "bob" {
		t.Fatalf("audit: %+v", a)
	}
}

// actionsTried is every action a console offers, with a form that would
// change something.
var actionsTried = []struct {
	path string
	form url.Values
}{
	{"/dlq/replay", url.Values{"seq": {"1"}, "scope": {"selected"}}},
	{"/dlq/purge", url.Values{"seq": {"1"}, "confirm": {"yes"}}},
	{"/schedules/cancel", url.Values{"id": {"later-1"}}},
	{"/schedules/run", url.Values{"id": {"later-1"}}},
	{"/projects/pause", url.Values{"project": {"acme"}, "reason": {"x"}}},
	{"/projects/resume", url.Values{"project": {"acme"}}},
}

func TestReadOnlyRefusesEveryAction(t *testing.T) {
	f := newFixture(t, func(c *console.Config) { c.ReadOnly = true })
	for _, a := range actionsTried {
		if code, _, _ := f.do("POST", a.path, a.form); code != http.StatusForbidden {
			t.Errorf("POST %s on a read-only console: %d, want 403", a.path, code)
		}
	}
	if n := len(f.deadLetters()); n != 4 {
		t.Errorf("a read-only console changed the dead letters: %d left", n)
	}
	for _, p := range []string{"/dlq", "/dlq/1", "/schedules", "/projects"} {
		if body := f.get(p); strings.Contains(body, `method="post"`) {
			t.Errorf("read-only %s offers an action form", p)
		}
	}
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	f := newFixture(t, nil)
	for _, a := range actionsTried {
		for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			if code, _, _ := f.do("POST", a.path, a.form, hdr...); code != http.StatusForbidden {
				t.Errorf("POST %s with %s: %d, want 403", a.path, hdr, code)
			}
		}
	}
	if n := len(f.deadLetters()); n != 4 {
		t.Errorf("a cross-site POST changed the dead letters: %d left", n)
	}
}

func TestAuthentication(t *testing.T) {
	basic := newFixture(t, func(c *console.Config) { c.Auth.Users = map[string]string{"alice": "pw"} })
	for _, tc := range []struct {
		hdr  []string
		code int
	}{
		{nil, http.StatusUnauthorized},
		{[]string{"Authorization", "Basic YWxpY2U6bm8="}, http.StatusUnauthorized}, // alice:no
		{[]string{"Authorization", "Basic Ym9iOnB3"}, http.StatusUnauthorized},     // bob:pw
		{[]string{"Authorization", "Basic YWxpY2U6cHc="}, http.StatusOK},           // alice:pw
	} {
		if code, _, h := basic.do("GET", "/", nil, tc.hdr...); code != tc.code || (code == 401 && h.Get("WWW-Authenticate") == "") {
			t.Errorf("basic auth %v: %d, want %d", tc.hdr, code, tc.code)
		}
	}
	proxy := newFixture(t, func(c *console.Config) { c.Auth.Header = "X-Forwarded-User" })
	if code, _, _ := proxy.do("GET", "/", nil); code != http.StatusUnauthorized {
		t.Errorf("no proxy header: %d, want 401", code)
	}
	if code, body, _ := proxy.do("GET", "/", nil, "X-Forwarded-User", "carol"); code != http.StatusOK || !strings.Contains(body, "carol") {
		t.Errorf("proxy header: %d", code)
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		auth    console.Auth
		refused bool
	}{
		{"127.0.0.1:8090", console.Auth{}, false},
		{"[::1]:8090", console.Auth{}, false},
		{"localhost:8090", console.Auth{}, false},
		{":8090", console.Auth{}, true},
		{"0.0.0.0:8090", console.Auth{}, true},
		{"10.0.0.5:8090", console.Auth{}, true},
		{"0.0.0.0:8090", console.Auth{Header: "X-Forwarded-User"}, false},
		{"0.0.0.0:8090", console.Auth{Users: map[string]string{"a": "b"}}, false},
	} {
		err := console.CheckExposure(tc.addr, tc.auth)
		if refused := errors.Is(err, console.ErrExposed); refused != tc.refused {
			t.Errorf("CheckExposure(%q, %+v) = %v, want refused=%v", tc.addr, tc.auth, err, tc.refused)
		}
	}
}
