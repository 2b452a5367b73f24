package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/audit"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/dlq"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/project"
)

// pageTimeout bounds the reads behind one page, so a slow NATS shows as an
// error on the page rather than a hung browser tab.
const pageTimeout = 10 * time.Second

type overviewData struct {
	Paused      []project.State
	Projects    []projectLine
	ProjectsErr string
	Backlog     uint64
	Oldest      time.Time
	BacklogErr  string
	DeadTotal   uint64
	Dead24h     []classCount
	Dead24hSum  int
	DeadErr     string
	Workers     []fleet.Member
	WorkersErr  string
	InFlight    int
	Capacity    int
}

// projectLine is one project on the overview: its state, the commands
// waiting on its subjects, and what the replicas spent of its budget.
type projectLine struct {
	project.State
	Waiting    int
	WaitingErr string
	Budget     *chat.Budget
}

// BudgetText says the budget used in the last minute: "450/600 (75%)".
func (l projectLine) BudgetText() string {
	switch b := l.Budget; {
	case b == nil:
		return "-"
	case !b.Known || b.Limit <= 0:
		return fmt.Sprint(b.Used)
	default:
		return fmt.Sprintf("%d/%d (%d%%)", b.Used, b.Limit, b.Used*100/b.Limit)
	}
}

// projectLines lists every project that is paused or that a live replica
// serves, with the commands waiting on its v2 subjects (one stream read per
// project, counting its subjects' messages).
func (c *Console) projectLines(ctx context.Context, paused []project.State, workers []fleet.Member) []projectLine {
	var lines []projectLine
	seen := map[string]int{}
	add := func(st project.State) *projectLine {
		if i, ok := seen[st.Project]; ok {
			return &lines[i]
		}
		seen[st.Project] = len(lines)
		lines = append(lines, projectLine{State: st})
		return &lines[len(lines)-1]
	}
	for _, st := range paused {
		add(st)
	}
	for name, b := range fleet.BudgetUse(workers) {
		add(project.State{Project: name}).Budget = &b
	}
	for i := range lines {
		n, err := actions.Waiting(ctx, c.cfg.JS, c.cfg.Subjects.For(lines[i].Project), actions.WithStreams(c.cfg.CommandsStream, "", ""))
		lines[i].Waiting = n
		if err != nil {
			lines[i].WaitingErr = err.Error()
		}
	}
	slices.SortFunc(lines, func(a, b projectLine) int { return strings.Compare(a.Project, b.Project) })
	return lines
}

type classCount struct {
	Class string
	N     int
}

// overview reads each part on its own: one part failing (no projects
// bucket yet, say) leaves the others on the page.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	var d overviewData
	if s, err := project.Bind(ctx, c.cfg.JS, c.cfg.ProjectsBucket); err != nil {
		d.ProjectsErr = err.Error()
	} else if d.Paused, err = s.List(ctx); err != nil {
		d.ProjectsErr = err.Error()
	}
	if st, err := c.cfg.JS.Stream(ctx, c.cfg.CommandsStream); err != nil {
		d.BacklogErr = fmt.Sprintf("stream %s: %v", c.cfg.CommandsStream, err)
	} else if info, err := st.Info(ctx); err != nil {
		d.BacklogErr = fmt.Sprintf("stream %s: %v", c.cfg.CommandsStream, err)
	} else {
		d.Backlog, d.Oldest = info.State.Msgs, info.State.FirstTime
		if d.Backlog == 0 {
			d.Oldest = time.Time{}
		}
	}
	if q, err := c.queue(ctx); err != nil {
		d.DeadErr = err.Error()
	} else {
		d.DeadTotal, _ = q.Count(ctx)
		sel, err := q.List(ctx, dlq.Filter{Since: time.Now().Add(-24 * time.Hour)})
		if err != nil {
			d.DeadErr = err.Error()
		}
		counts := map[string]int{}
		for _, e := range sel.Entries {
			counts[cmp.Or(string(e.Class()), "unreadable")]++
		}
		for k, n := range counts {
			d.Dead24h = append(d.Dead24h, classCount{k, n})
			d.Dead24hSum += n
		}
		slices.SortFunc(d.Dead24h, func(a, b classCount) int { return cmp.Or(b.N-a.N, strings.Compare(a.Class, b.Class)) })
	}
	var err error
	if d.Workers, err = fleet.List(ctx, c.cfg.JS, c.cfg.FleetBucket); err != nil {
		d.WorkersErr = err.Error()
	}
	for _, m := range d.Workers {
		d.InFlight += m.InFlight
		d.Capacity += m.Concurrency
	}
	d.Projects = c.projectLines(ctx, d.Paused, d.Workers)
	c.render(w, r, "overview", "Overview", http.StatusOK, d, nil)
}

func (c *Console) queue(ctx context.Context) (*dlq.Queue, error) {
	return dlq.Open(ctx, c.cfg.JS, dlq.Config{Subjects: c.cfg.Subjects, Stream: c.cfg.DeadLettersStream, CommandsStream: c.cfg.CommandsStream})
}

// filterValues reads the filter of the dead-letter pages from a query or a
// form, with the names of `worker dlq`'s flags.
func filterValues(v url.Values) dlq.Values {
	limit, _ := strconv.Atoi(v.Get("limit"))
	return dlq.Values{Class: v.Get("class"), Type: v.Get("type"), Chat: v.Get("chat"), ID: v.Get("id"),
		Since: v.Get("since"), Until: v.Get("until"), Limit: limit}
}

func filterQuery(f dlq.Values) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"class": f.Class, "type": f.Type, "chat": f.Chat, "id": f.ID, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// pageLimit is how many dead letters one page lists when the filter sets
// no limit; replaying "all matching" is not bound by it.
const pageLimit = 200

type dlqData struct {
	Filter   dlq.Values
	Query    string
	Entries  []dlq.Entry
	Matched  int
	Stream   string
	Total    uint64
	Expired  int
	Classes  string
	Types    string
	FilterIs string
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	d := dlqData{Filter: filterValues(r.URL.Query()), Classes: dlq.ClassList(), Types: dlq.TypeList()}
	d.Query = filterQuery(d.Filter).Encode()
	f, err := dlq.ParseFilter(d.Filter, time.Now())
	if err != nil {
		c.render(w, r, "dlq", "Dead letters", http.StatusBadRequest, d, err)
		return
	}
	d.FilterIs = f.String()
	if f.Limit == 0 {
		f.Limit = pageLimit
	}
	q, err := c.queue(ctx)
	if err != nil {
		c.render(w, r, "dlq", "Dead letters", http.StatusServiceUnavailable, d, err)
		return
	}
	d.Stream = q.Stream()
	d.Total, _ = q.Count(ctx)
	sel, err := q.List(ctx, f)
	d.Entries, d.Matched = sel.Entries, sel.Matched
	now := time.Now()
	for _, e := range d.Entries {
		if e.PastDeadline(now) {
			d.Expired++
		}
	}
	c.render(w, r, "dlq", "Dead letters", http.StatusOK, d, err)
}

type letterData struct {
	Entry    dlq.Entry
	Stream   string
	Command  string
	Raw      string
	Headers  [][2]string
	Expired  bool
	Trace    string
	NotFound string
}

func (c *Console) deadLetter(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	q, err := c.queue(ctx)
	if err != nil {
		c.render(w, r, "deadletter", "Dead letter", http.StatusServiceUnavailable, letterData{}, err)
		return
	}
	e, err := q.Get(ctx, r.PathValue("ref"))
	if errors.Is(err, dlq.ErrNotFound) {
		c.render(w, r, "deadletter", "Dead letter", http.StatusNotFound, letterData{NotFound: r.PathValue("ref")}, err)
		return
	}
	if err != nil {
		c.render(w, r, "deadletter", "Dead letter", http.StatusServiceUnavailable, letterData{}, err)
		return
	}
	d := letterData{Entry: e, Stream: q.Stream(), Headers: headerRows(e.Letter.Headers), Expired: e.PastDeadline(time.Now()),
		Trace: traceID(e.Letter.Traceparent)}
	if len(e.Letter.Command) > 0 {
		d.Command = showJSON(e.Letter.Command, c.cfg.HideContent)
	}
	if len(e.Letter.Raw) > 0 {
		d.Raw = fmt.Sprintf("%q", e.Letter.Raw)
		if c.cfg.HideContent {
			d.Raw = fmt.Sprintf("[hidden: %d bytes]", len(e.Letter.Raw))
		}
	}
	c.render(w, r, "deadletter", fmt.Sprintf("Dead letter %d", e.Seq), http.StatusOK, d, nil)
}

// selected is what a replay or purge form chose: the dead letters ticked
// (seq fields), or every one the filter matches (scope=all).
func (c *Console) selected(ctx context.Context, q *dlq.Queue, form url.Values) ([]dlq.Entry, string, error) {
	if form.Get("scope") == "all" {
		v := filterValues(form)
		f, err := dlq.ParseFilter(v, time.Now())
		if err != nil {
			return nil, "", err
		}
		sel, err := q.List(ctx, f)
		return sel.Entries, "all matching " + f.String(), err
	}
	var (
		entries []dlq.Entry
		names   []string
	)
	for _, s := range form["seq"] {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return nil, "", fmt.Errorf("dead letter %q: want a stream sequence", s)
		}
		e, err := q.Get(ctx, s)
		if errors.Is(err, dlq.ErrNotFound) {
			continue // replayed or purged meanwhile
		}
		if err != nil {
			return nil, "", err
		}
		entries = append(entries, e)
		names = append(names, cmp.Or(e.ID, "seq "+s))
	}
	return entries, strings.Join(names, ", "), nil
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	back := filterQuery(filterValues(r.Form))
	opts := dlq.ReplayOptions{Rate: 10, DryRun: r.Form.Get("dry_run") != "", IncludeInvalid: r.Form.Get("include_invalid") != ""}
	if s := r.Form.Get("rate"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > 1000 {
			done(w, r, "/dlq", back, fmt.Sprintf("rate %q: want 0 (no cap) to 1000 per second; nothing replayed", s))
			return
		}
		opts.Rate = v
	}
	if s := strings.TrimSpace(r.Form.Get("not_after")); s != "" {
		t, err := parseDeadline(s, time.Now())
		if err != nil {
			done(w, r, "/dlq", back, err.Error()+"; nothing replayed")
			return
		}
		opts.NotAfter = t
	}
	q, err := c.queue(r.Context())
	if err != nil {
		done(w, r, "/dlq", back, err.Error())
		return
	}
	entries, which, err := c.selected(r.Context(), q, r.Form)
	if err != nil {
		done(w, r, "/dlq", back, err.Error()+"; nothing replayed")
		return
	}
	if len(entries) == 0 {
		done(w, r, "/dlq", back, "nothing selected: tick dead letters, or replay all matching")
		return
	}
	// The replay runs in this request: it stops if the operator leaves,
	// and replaying again is safe (dlq skips what was republished).
	cnt, err := q.Replay(r.Context(), entries, opts)
	verb := "replayed"
	if opts.DryRun {
		verb = "dry run: would replay"
	}
	msg := fmt.Sprintf("%s %d of %d (%d already republished earlier), skipped %d", verb, cnt.Replayed, len(entries), cnt.Already, cnt.Skipped)
	if !opts.NotAfter.IsZero() {
		msg += ", new deadline " + ts(opts.NotAfter)
	}
	if err != nil {
		msg += "; stopped: " + err.Error() + " (the rest are still in " + q.Stream() + "; replaying again is safe)"
	}
	if !opts.DryRun && cnt.Replayed > 0 {
		detail := fmt.Sprintf("skipped %d, rate %g/s", cnt.Skipped, opts.Rate)
		if !opts.NotAfter.IsZero() {
			detail += ", new deadline " + ts(opts.NotAfter)
		}
		msg += c.record(r, audit.Entry{Action: audit.Replay, Which: which, Count: cnt.Replayed, Detail: detail})
	}
	done(w, r, "/dlq", back, msg)
}

// parseDeadline reads a new deadline as `worker dlq replay --not-after`
// does: a duration from now, or an RFC 3339 time.
func parseDeadline(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("new deadline %s: want a positive duration or a time", v)
		}
		return now.Add(d), nil
	}
	t, err := contract.ParseDeadline(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("new deadline %q: want a duration (15m) or an RFC 3339 time (2026-11-25T09:15:00Z)", v)
	}
	return t, nil
}

type purgeData struct {
	Filter  dlq.Values
	Seqs    []string
	Scope   string
	Which   string
	Entries []dlq.Entry
}

// purgeConfirm shows what a purge would delete and asks.
func (c *Console) purgeConfirm(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	form := r.URL.Query()
	d := purgeData{Filter: filterValues(form), Seqs: form["seq"], Scope: form.Get("scope")}
	q, err := c.queue(ctx)
	if err == nil {
		d.Entries, d.Which, err = c.selected(ctx, q, form)
	}
	c.render(w, r, "purge", "Purge dead letters?", http.StatusOK, d, err)
}

func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	back := filterQuery(filterValues(r.Form))
	if r.Form.Get("confirm") != "yes" {
		http.Error(w, "400 bad request: a purge needs confirm=yes (the confirmation page sets it)", http.StatusBadRequest)
		return
	}
	q, err := c.queue(r.Context())
	if err != nil {
		done(w, r, "/dlq", back, err.Error())
		return
	}
	entries, which, err := c.selected(r.Context(), q, r.Form)
	if err != nil {
		done(w, r, "/dlq", back, err.Error()+"; nothing deleted")
		return
	}
	n, err := q.Purge(r.Context(), entries)
	msg := fmt.Sprintf("deleted %d dead letters from %s", n, q.Stream())
	if err != nil {
		msg += "; stopped: " + err.Error()
	}
	if n > 0 {
		msg += c.record(r, audit.Entry{Action: audit.Purge, Which: which, Count: n})
	}
	done(w, r, "/dlq", back, msg)
}

func (c *Console) schedules(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	list, err := actions.ListSchedules(ctx, c.cfg.JS, c.cfg.Subjects)
	c.render(w, r, "schedules", "Scheduled commands", http.StatusOK, list, err)
}

func (c *Console) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.Form.Get("id")
	gone, err := actions.CancelSchedule(r.Context(), c.cfg.JS, c.cfg.Subjects, id)
	if err != nil {
		done(w, r, "/schedules", nil, "cancel "+id+": "+err.Error())
		return
	}
	msg := fmt.Sprintf("cancelled %d schedule(s) of %s: it will not run", len(gone), id)
	if len(gone) > 0 {
		msg += c.record(r, audit.Entry{Action: audit.Cancel, Which: id, Count: len(gone)})
	}
	done(w, r, "/schedules", nil, msg)
}

// runNow publishes a schedule's command at once (actions.RunNow).
func (c *Console) runNow(w http.ResponseWriter, r *http.Request) {
	id := r.Form.Get("id")
	ran, err := actions.RunNow(r.Context(), c.cfg.JS, c.cfg.Subjects, id)
	var said []string
	for _, x := range ran {
		s := fmt.Sprintf("published %s %s now", x.Type, x.Command)
		switch {
		case x.Duplicate:
			s += " (a command with this id was already in the stream: that one runs)"
		case x.Kept:
			s += fmt.Sprintf(" (the series goes on: next at %s)", ts(x.At))
		default:
			s += " and removed its schedule"
		}
		said = append(said, s)
	}
	msg := strings.Join(said, "; ")
	if len(ran) > 0 {
		// Recorded even when a later step failed: commands were published.
		ids := make([]string, len(ran))
		for i, x := range ran {
			ids[i] = x.Command
		}
		msg += c.record(r, audit.Entry{Action: audit.RunNow, Which: id, Count: len(ran), Detail: "published " + strings.Join(ids, ", ")})
	}
	if err != nil {
		msg = strings.TrimPrefix(msg+"; run "+id+" now: "+err.Error(), "; ")
	}
	done(w, r, "/schedules", nil, msg)
}

type commandData struct {
	ID       string
	Status   actions.CommandStatus
	Found    bool
	Response string
	Command  string
	Trace    string
}

func (c *Console) command(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	d := commandData{ID: id}
	if id == "" {
		c.render(w, r, "command", "A command", http.StatusOK, d, nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	st, err := actions.Status(ctx, c.cfg.JS, id, c.cfg.Subjects, actions.WithIdempotencyBucket(c.cfg.IdempotencyBucket))
	status := http.StatusOK
	if errors.Is(err, actions.ErrUnknownCommand) {
		status = http.StatusNotFound
	}
	d.Status, d.Found = st, err == nil
	if res := st.Result; res != nil {
		d.Response = showJSON(res.Response, false)
		if c.cfg.HideContent {
			// A response is the customers' text throughout.
			d.Response = fmt.Sprintf("[hidden: %d bytes]", len(res.Response))
		}
		d.Trace = traceID(res.Traceparent)
	}
	if dl := st.DeadLetter; dl != nil {
		if len(dl.Command) > 0 {
			d.Command = showJSON(dl.Command, c.cfg.HideContent)
		}
		d.Trace = traceID(dl.Traceparent)
	}
	c.render(w, r, "command", "Command "+id, status, d, err)
}

func (c *Console) projects(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	s, err := project.Bind(ctx, c.cfg.JS, c.cfg.ProjectsBucket)
	var list []project.State
	if err == nil {
		list, err = s.List(ctx)
	}
	c.render(w, r, "projects", "Projects", http.StatusOK, list, err)
}

func (c *Console) pause(w http.ResponseWriter, r *http.Request) {
	name, reason := strings.TrimSpace(r.Form.Get("project")), strings.TrimSpace(r.Form.Get("reason"))
	if reason == "" {
		done(w, r, "/projects", nil, "pause "+name+": say why (the reason is shown to the other operators and to apps whose commands wait); nothing paused")
		return
	}
	s, err := project.Bind(r.Context(), c.cfg.JS, c.cfg.ProjectsBucket)
	if err != nil {
		done(w, r, "/projects", nil, err.Error())
		return
	}
	st, err := s.PauseByOperator(r.Context(), name, reason, who(r))
	if err != nil {
		done(w, r, "/projects", nil, "pause "+name+": "+err.Error())
		return
	}
	msg := st.Project + ": " + st.String() + c.record(r, audit.Entry{Action: audit.Pause, Which: st.Project, Count: 1, Detail: reason})
	done(w, r, "/projects", nil, msg)
}

func (c *Console) resume(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.Form.Get("project"))
	s, err := project.Bind(r.Context(), c.cfg.JS, c.cfg.ProjectsBucket)
	if err != nil {
		done(w, r, "/projects", nil, err.Error())
		return
	}
	st, was, err := s.ResumeByOperator(r.Context(), name)
	if err != nil {
		done(w, r, "/projects", nil, "resume "+name+": "+err.Error())
		return
	}
	if !was {
		done(w, r, "/projects", nil, st.Project+" was not paused by an operator; it is "+st.String())
		return
	}
	msg := st.Project + ": " + st.String() + c.record(r, audit.Entry{Action: audit.Resume, Which: st.Project, Count: 1})
	done(w, r, "/projects", nil, msg)
}

// auditLimit is how many entries the audit page lists.
const auditLimit = 200

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	list, err := c.log.Recent(ctx, auditLimit)
	c.render(w, r, "audit", "Audit", http.StatusOK, list, err)
}
