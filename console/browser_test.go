package console_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/console"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"
)

var screenshots = flag.String("screenshots", "", "directory to save the browser test's screenshots in (docs/console: ../docs/console)")

// browser finds Debian's chromium. Under CI=true a missing browser fails
// the test: .ci/run installs it, so its absence is a broken runner.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install -y chromium)")
	return ""
}

// runWorker starts a worker against the chat simulator until the test
// ends, and has it join the fleet so the overview lists it.
func runWorker(t *testing.T, h *workertest.Harness) {
	t.Helper()
	h.Start(h.Executor)
	fl, err := fleet.Join(t.Context(), h.JS, fleet.Config{}, fleet.Member{Name: "worker-0/4242", Version: "v1.9.0", Concurrency: 4}, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// Leaves before the worker stops, as a replica shutting down does.
	t.Cleanup(func() { fl.Leave(context.Background()) })
}

// TestBrowser drives the console in a headless Chromium as an operator
// would: replay a dead letter until its command succeeds, run a one-shot
// and a recurring schedule now, cancel a schedule, pause and resume a project; and checks that a read-only
// console, a cross-site form and a missing password change nothing.
func TestBrowser(t *testing.T) {
	execPath := browser(t)
	h := workertest.New(t, workertest.NoWorker(), workertest.WithConfig(func(c *consumer.Config) { c.Concurrency = 4 }))
	js := h.JS
	if _, err := project.Open(t.Context(), js, project.Config{}); err != nil {
		t.Fatal(err)
	}
	runWorker(t, h)

	// Two commands that expired before a worker took them: dead letters of
	// class expired, which replay with a new deadline.
	for _, id := range []string{"order-4711", "order-4712"} {
		c := actions.Command{ID: id, Type: contract.TypeSend, ChatID: "chat-" + id, Content: "your order shipped", NotAfter: time.Now().Add(-time.Minute)}
		if _, err := actions.Publish(t.Context(), js, c, actions.Subjects{}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := dlq.Open(t.Context(), js, dlq.Config{})
	if err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 10*time.Second, func() bool { n, _ := q.Count(t.Context()); return n == 2 }, "two dead letters")
	for _, id := range []string{"reminder-1", "reminder-2"} {
		if _, err := actions.ScheduleAt(t.Context(), js, actions.Note{ID: id, ChatID: "chat-9", Content: "see you"}, time.Now().Add(2*time.Hour), actions.Subjects{}); err != nil {
			t.Fatal(err)
		}
	}
	series, err := actions.ScheduleRecurring(t.Context(), js, actions.Send{ID: "digest-daily", ChatID: "chat-7", Content: "your daily digest"}, actions.Recurrence{Cron: "0 0 9 * * *", TZ: "Europe/London"}, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}

	newServer := func(mutate func(*console.Config)) string { return serveConsole(t, js, mutate) }
	base := newServer(nil)
	readOnly := newServer(func(c *console.Config) { c.ReadOnly = true })
	locked := newServer(func(c *console.Config) { c.Auth.Users = map[string]string{"alice": "correct horse"} })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(execPath), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var b []byte
			if err := chromedp.FullScreenshot(&b, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var msg string
	// bodyWith waits for the browser to show the page at path and reads it.
	bodyWith := func(path string, text *string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			for {
				err := chromedp.Evaluate(`document.readyState === "complete" && location.pathname === `+fmt.Sprintf("%q", path)+` ? document.body.innerText : ""`, text).Do(ctx)
				if err == nil && *text != "" {
					return nil
				}
				select {
				case <-ctx.Done():
					var href string
					_ = chromedp.Evaluate(`location.href + " " + document.readyState`, &href).Do(context.WithoutCancel(ctx))
					return fmt.Errorf("no page %s: %w (last: %v; at %s)", path, ctx.Err(), err, href)
				case <-time.After(25 * time.Millisecond):
				}
			}
		})
	}
	// An action answers with a redirect to a page that says what happened.
	// Reading it while the browser navigates fails now and then, so read
	// until the page has loaded.
	afterRedirect := chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var text string
			err := chromedp.Evaluate(`document.readyState === "complete" && location.search.includes("msg=") && document.querySelector(".msg") ? document.querySelector(".msg").textContent : ""`, &text).Do(ctx)
			if err == nil && text != "" {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no page after the redirect: %w (last: %v)", ctx.Err(), err)
			case <-time.After(25 * time.Millisecond):
			}
		}
	})

	// Replay one dead letter with a new deadline; its command succeeds.
	run("dead letters", chromedp.Navigate(base+"/dlq"), chromedp.WaitVisible(`input[name=seq]`, chromedp.ByQuery), shot("dead-letters"))
	run("one dead letter", chromedp.Navigate(base+"/dlq/order-4711"), chromedp.WaitVisible(`pre`, chromedp.ByQuery), shot("dead-letter"))
	run("replay", chromedp.SetValue(`input[name=not_after]`, "15m", chromedp.ByQuery),
		chromedp.Click(`button[value=selected]`, chromedp.ByQuery),
		afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "replayed 1 of 1") {
		t.Fatalf("after replay the page says %q", msg)
	}
	workertest.Eventually(t, 10*time.Second, func() bool {
		st, err := actions.Status(t.Context(), js, "order-4711", actions.Subjects{})
		return err == nil && st.State == actions.StateSucceeded
	}, "the replayed command did not succeed")
	run("command", chromedp.Navigate(base+"/command?id=order-4711"), chromedp.Text(`.state`, &msg, chromedp.ByQuery), shot("command"))
	if msg != "succeeded" {
		t.Fatalf("the command page says %q", msg)
	}
	run("purge confirmation", chromedp.Navigate(base+"/dlq/purge?scope=all&class=expired"), chromedp.WaitVisible(`button.danger`, chromedp.ByQuery), shot("purge-confirm"))

	// Run a schedule now: its command succeeds and the schedule is gone.
	// Run a recurring one now: one firing succeeds, the series goes on.
	// Cancel a schedule.
	run("schedules", chromedp.Navigate(base+"/schedules"), chromedp.WaitVisible(`button.danger`, chromedp.ByQuery), shot("schedules"),
		chromedp.Click(`button[aria-label="run reminder-2 now"]`, chromedp.ByQuery), afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "published note reminder-2 now and removed its schedule") {
		t.Fatalf("after run now the page says %q", msg)
	}
	succeeds := func(id string) {
		t.Helper()
		workertest.Eventually(t, 10*time.Second, func() bool {
			st, err := actions.Status(t.Context(), js, id, actions.Subjects{})
			return err == nil && st.State == actions.StateSucceeded
		}, "the command %s run now did not succeed", id)
	}
	succeeds("reminder-2")
	// Each action from a freshly loaded page: the page after the last
	// redirect has msg= in its address too, which afterRedirect would take
	// for the next one's.
	run("run a series now", chromedp.Navigate(base+"/schedules"), chromedp.Click(`button[aria-label="run digest-daily now"]`, chromedp.ByQuery), afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery))
	firing := regexp.MustCompile(`published send (digest-daily@\S+Z) now \(the series goes on`).FindStringSubmatch(msg)
	if firing == nil {
		t.Fatalf("after run now of the series the page says %q", msg)
	}
	succeeds(firing[1])
	run("cancel", chromedp.Navigate(base+"/schedules"), chromedp.Click(`button[aria-label="cancel reminder-1"]`, chromedp.ByQuery), afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "cancelled 1") {
		t.Fatalf("after cancel the page says %q", msg)
	}
	if list, _ := actions.ListSchedules(t.Context(), js, actions.Subjects{}); len(list) != 1 || list[0].ID != "digest-daily" || !list[0].At.Equal(series.At) {
		t.Fatalf("want the series alone left, next at %s: %+v", series.At, list)
	}

	// Pause a project, see it on the overview, resume it.
	states, err := project.Bind(t.Context(), js, "")
	if err != nil {
		t.Fatal(err)
	}
	run("pause", chromedp.Navigate(base+"/projects"),
		chromedp.SetValue(`input[name=project]`, "acme-shop", chromedp.ByQuery),
		chromedp.SetValue(`input[name=reason]`, "provider incident INC-2291", chromedp.ByQuery),
		chromedp.Click(`form[action="/projects/pause"] button`, chromedp.ByQuery),
		afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery), shot("projects"))
	if st, _ := states.Get(t.Context(), "acme-shop"); st.Operator == nil {
		t.Fatalf("not paused; the page says %q", msg)
	}
	run("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`tr.paused`, chromedp.ByQuery), shot("overview"))
	run("resume", chromedp.Navigate(base+"/projects"), chromedp.Click(`form[action="/projects/resume"] button`, chromedp.ByQuery),
		afterRedirect, chromedp.Text(`.msg`, &msg, chromedp.ByQuery))
	if st, _ := states.Get(t.Context(), "acme-shop"); !st.Active() {
		t.Fatalf("not resumed; the page says %q", msg)
	}
	run("audit", chromedp.Navigate(base+"/audit"), chromedp.Text(`table`, &msg, chromedp.ByQuery), shot("audit"))
	for _, a := range []string{"replay", "run-now", "cancel", "pause", "resume"} {
		if !strings.Contains(msg, a) {
			t.Errorf("the audit page does not list %s:\n%s", a, msg)
		}
	}

	// A read-only console offers no action and refuses one posted anyway
	// (same origin, so only read-only mode stands in the way).
	var forms int
	run("read-only", chromedp.Navigate(readOnly+"/dlq"), chromedp.WaitVisible(`table`, chromedp.ByQuery), shot("read-only"),
		chromedp.Evaluate(`document.querySelectorAll('form[method=post]').length`, &forms))
	if forms != 0 {
		t.Errorf("the read-only console offers %d action forms", forms)
	}
	for _, path := range []string{"/dlq/replay", "/dlq/purge", "/schedules/cancel", "/schedules/run", "/projects/pause", "/projects/resume"} {
		post := fmt.Sprintf(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = %q;
			for (const [k, v] of [["scope", "all"], ["confirm", "yes"], ["project", "acme-shop"], ["reason", "x"], ["id", "reminder-1"]]) {
				const i = document.createElement("input"); i.name = k; i.value = v; f.appendChild(i); }
			document.body.appendChild(f); f.submit(); return true })()`, path)
		run("read-only POST", chromedp.Navigate(readOnly+"/dlq"), chromedp.WaitVisible(`table`, chromedp.ByQuery),
			chromedp.Evaluate(post, nil), bodyWith(path, &msg))
		if !strings.Contains(msg, "403 forbidden: this console is read-only") {
			t.Errorf("read-only POST %s answered %q", path, msg)
		}
	}
	if n, _ := q.Count(t.Context()); n != 1 {
		t.Errorf("the read-only console changed the dead letters: %d left, want 1", n)
	}

	// A page on another site posts a form to the console: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<form method="post" action="%s/projects/pause"><input name="project" value="acme-shop"><input name="reason" value="gotcha"><button>Win a prize</button></form>`, base)
	}))
	t.Cleanup(evil.Close)
	// Another port is another origin, as another domain would be.
	run("cross-site", chromedp.Navigate(evil.URL), chromedp.Click(`button`, chromedp.ByQuery),
		bodyWith("/projects/pause", &msg))
	if st, _ := states.Get(t.Context(), "acme-shop"); !st.Active() {
		t.Fatalf("a cross-site form paused the project; the console answered %q", msg)
	}
	if !strings.Contains(strings.ToLower(msg), "cross-origin") {
		t.Errorf("the cross-site POST was answered %q", msg)
	}

	// No password: refused. With one: let in.
	// Headless Chromium, asked for a password it has not got, gives up on
	// the page.
	err = chromedp.Run(ctx, chromedp.Navigate(locked+"/"), chromedp.Text(`body`, &msg, chromedp.ByQuery))
	if err == nil && !strings.Contains(msg, "401 unauthorized") || err != nil && !strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS") {
		t.Errorf("without a password the console answered %q (%v)", msg, err)
	}
	run("password", network.SetExtraHTTPHeaders(network.Headers{"Authorization": "Basic YWxpY2U6Y29ycmVjdCBob3JzZQ=="}), // alice:correct horse
		chromedp.Navigate(locked+"/"), chromedp.Text(`header .me`, &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "alice") {
		t.Errorf("with the password the console shows %q", msg)
	}
}
