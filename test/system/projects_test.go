package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/test/containers"
)

// TestCampaignLeavesOtherProjectServedOnCluster is issue 28 on the deployment
// in miniature: a 3-node JetStream cluster, three worker containers serving
// two named projects, a and b, each with its own site token and API key, and
// a simulator that knows both keys, each with its own rate budget of 300
// calls a minute. Project a publishes a campaign of 11,000 notes (more than
// a consumer's MaxAckPending, hours of a's budget); once a's waiting
// commands fill a consumer's pending limit, one worker drains and leaves,
// project b publishes 5 sends, and the worker comes back. Then:
//
//   - b's commands are all done within 30 s of their publish (at b's own
//     budget they take a few seconds); with one consumer shared by both
//     projects none of them would be delivered before a's backlog;
//   - a's backlog was still there when they were;
//   - once every worker has drained, every command has at most one record,
//     b's all have one, none is a dead letter, each result is on its
//     project's subject and names its project;
//   - the simulator applied each effect once, for the command's own chat and
//     content, and exactly the commands with a result;
//   - each command's effect was made with its project's key: the simulator
//     refuses a key with the other project's site token, and its
//     Idempotency-Key ledger is kept per API key, so a probe call with a
//     command's id and its project's key is answered with the command's
//     stored effect only if that key made it (every command with a result;
//     a probe with the other project's key is the control). The workers
//     keep a key's bucket at the simulator nearly full, so the probes
//     rarely wait for budget.
func TestCampaignLeavesOtherProjectServedOnCluster(t *testing.T) {
	containers.RequireDocker(t)
	began := time.Now()
	rig := newProjectsRig(t)
	t.Logf("setup (3 NATS nodes, sim, 3 workers serving a and b): %v", time.Since(began).Round(time.Millisecond))

	a := batch{project: projectA, typ: contract.TypeNote, n: 11000}
	b := batch{project: projectB, typ: contract.TypeSend, n: 5}

	mark := time.Now()
	rig.publish(t, a)
	t.Logf("published a's %d notes in %v", a.n, time.Since(mark).Round(time.Millisecond))
	mark = time.Now()
	full := rig.waitPendingLimit(t)
	t.Logf("a's waiting commands filled %s in %v", full, time.Since(mark).Round(time.Millisecond))

	// A replica leaves mid-campaign, draining the bookings of a's it holds,
	// and comes back while b's commands run.
	leaving := rig.workers[2]
	rig.stopWorker(t, leaving)

	published := time.Now()
	rig.publish(t, b)
	leaving.Start(t)

	// b's own budget (300 a minute) takes its 5 calls within 3 s even when
	// one replica, at its third of the budget, makes them all: 30 s is a
	// bound no machine should reach, while a's backlog would hold them for
	// over half an hour.
	const bound = 30 * time.Second
	latest := rig.waitDone(t, b, bound+15*time.Second)
	took := latest.Sub(published)
	aDone := rig.records(t).done(a)
	t.Logf("b's %d sends done %v after their publish, with %d of a's %d notes done", b.n, took.Round(time.Millisecond), aDone, a.n)
	if took > bound {
		t.Errorf("b's commands were done %v after their publish, want within %v", took, bound)
	}
	if aDone >= a.n {
		t.Fatalf("a's campaign was over (%d of %d) when b's commands were done: the scenario tested nothing", aDone, a.n)
	}

	// Freeze the campaign: every worker drains, so every effect made has
	// its record, and a's budget is the probes' alone.
	for _, w := range rig.workers {
		rig.stopWorker(t, w)
	}
	recs := rig.records(t)
	effects := rig.effects(t)
	// Every command could succeed: a dead letter is a failure.
	for _, d := range recs.dead {
		t.Errorf("dead letter of %s on %s (project %q): %s", d.id, d.subject, d.project, d.class)
	}
	for _, bt := range []batch{a, b} {
		checkRecords(t, bt, recs)
		checkEffects(t, bt, effects, recs)
	}
	rig.probeKeys(t, b, slices.Sorted(maps.Keys(recs.byProject(b))), projectA)
	rig.probeKeys(t, a, slices.Sorted(maps.Keys(recs.byProject(a))), projectB)
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// simProject is a project as the simulator and the workers both know it.
type simProject struct{ name, site, key string }

var (
	projectA = simProject{name: "a", site: "GSN-00000A-A", key: "system-test-key-a"}
	projectB = simProject{name: "b", site: "GSN-00000B-B", key: "system-test-key-b"}
	// The default project: the worker checks its key at start.
	projectDefault = simProject{site: "GSN-000000-T", key: "system-test-key"}
)

// batch is n commands of one type of a project, each for a chat of its own:
// command i is "<project>-<i>" for chat "<project>-chat-<i>", with content
// "<project> <i>".
type batch struct {
	project simProject
	typ     contract.Type
	n       int
}

func (b batch) id(i int) string      { return fmt.Sprintf("%s-%05d", b.project.name, i) }
func (b batch) chat(i int) string    { return fmt.Sprintf("%s-chat-%05d", b.project.name, i) }
func (b batch) content(i int) string { return fmt.Sprintf("%s %05d", b.project.name, i) }
func (b batch) subjects() contract.Subjects {
	return contract.Subjects{}.For(b.project.name)
}

// index is i for the id of b's command i, or false for anything else.
func (b batch) index(id string) (int, bool) {
	var i int
	if _, err := fmt.Sscanf(id, b.project.name+"-%05d", &i); err != nil || i < 0 || i >= b.n || b.id(i) != id {
		return 0, false
	}
	return i, true
}

func (b batch) body(i int) []byte {
	body, err := json.Marshal(map[string]string{"id": b.id(i), "type": string(b.typ), "chat_id": b.chat(i), "content": b.content(i)})
	if err != nil {
		panic(err)
	}
	return body
}

type projectsRig struct {
	cluster *containers.Cluster
	sim     *containers.Container
	workers []*containers.Container
	js      jetstream.JetStream
}

func newProjectsRig(t *testing.T) *projectsRig {
	t.Helper()
	r := &projectsRig{cluster: containers.StartNATSCluster(t, 3)}
	creds := make([]string, 0, 3)
	for _, p := range []simProject{projectDefault, projectA, projectB} {
		creds = append(creds, p.key+"="+p.site)
	}
	r.sim = containers.StartSim(t, r.cluster.Network, "--honour-idempotency-key", "--seed", "28",
		"--rate-per-minute", "300", "--credentials", strings.Join(creds, ";"))
	env := maps.Clone(workerTimings)
	env["NATS_URL"] = r.cluster.InternalURLs()
	env["CHAT_API_URL"] = containers.SimAPIURL(r.sim)
	env["GOSQUARED_API_KEY"], env["GOSQUARED_SITE_TOKEN"] = projectDefault.key, projectDefault.site
	env["GOSQUARED_PROJECTS"] = fmt.Sprintf("%s:%s=%s,%s:%s=%s",
		projectA.name, projectA.site, projectA.key, projectB.name, projectB.site, projectB.key)
	for range 3 {
		r.workers = append(r.workers, containers.StartWorker(t, r.cluster.Network, env))
	}
	r.js = connect(t, r.cluster.ClientURLs(t))
	// The workers provision the streams; wait for them before publishing.
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := r.js.Stream(ctx, "CHAT_COMMANDS")
		return err
	})
	return r
}

// publish publishes every command of b on its project's v2 subjects,
// asynchronously, each with its id as Nats-Msg-Id, and waits for the
// stream's acknowledgements.
func (r *projectsRig) publish(t *testing.T, b batch) {
	t.Helper()
	s := b.subjects()
	futures := make([]jetstream.PubAckFuture, 0, b.n)
	for i := range b.n {
		msg := &nats.Msg{
			Subject: s.Command(b.typ, b.chat(i)),
			Data:    b.body(i),
			Header:  nats.Header{jetstream.MsgIDHeader: []string{b.id(i)}},
		}
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			t.Fatalf("publish %s: %v", b.id(i), err)
		}
		futures = append(futures, f)
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		t.Fatalf("publishing %d commands of %s took over two minutes", b.n, b.project.name)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish %s: %v", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		}
	}
}

// waitPendingLimit waits until a consumer of CHAT_COMMANDS has as many
// commands pending as its MaxAckPending allows: from then on, a consumer
// shared by both projects delivers nothing new until one of them settles.
// It returns which consumer it was, and its count.
func (r *projectsRig) waitPendingLimit(t *testing.T) string {
	t.Helper()
	var full string
	waitFor(t, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := r.js.Stream(ctx, "CHAT_COMMANDS")
		if err != nil {
			return err
		}
		var seen []string
		lister := s.ListConsumers(ctx)
		for info := range lister.Info() {
			if info.NumAckPending >= info.Config.MaxAckPending {
				full = fmt.Sprintf("consumer %s's pending limit (%d)", info.Name, info.NumAckPending)
				return nil
			}
			seen = append(seen, fmt.Sprintf("%s %d of %d", info.Name, info.NumAckPending, info.Config.MaxAckPending))
		}
		if err := lister.Err(); err != nil {
			return err
		}
		return fmt.Errorf("no consumer at its pending limit: %s", strings.Join(seen, ", "))
	})
	return full
}

// stopWorker sends SIGTERM and expects the worker to drain and exit 0
// within its grace, a campaign's held commands notwithstanding.
func (r *projectsRig) stopWorker(t *testing.T, w *containers.Container) {
	t.Helper()
	began := time.Now()
	w.Stop(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := w.C.State(ctx)
	if err != nil {
		t.Fatalf("state of %s: %v", w.Name, err)
	}
	if st.ExitCode != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", w.Name, st.ExitCode)
	}
	t.Logf("%s drained and exited %d in %v", w.Name, st.ExitCode, time.Since(began).Round(time.Millisecond))
}

// waitDone waits until every command of b has a result, and returns when
// the last of them was completed, by the results' completed_at (the
// containers share the host's clock).
func (r *projectsRig) waitDone(t *testing.T, b batch, d time.Duration) time.Time {
	t.Helper()
	var latest time.Time
	waitFor(t, d, func() error {
		recs := r.records(t)
		got := recs.byProject(b)
		if len(got) < b.n {
			return fmt.Errorf("%d of %s's %d commands have a result (%d dead letters)", len(got), b.project.name, b.n, len(recs.dead))
		}
		for _, res := range got {
			if res.CompletedAt.After(latest) {
				latest = res.CompletedAt
			}
		}
		return nil
	})
	return latest
}

// record is a result as stored: its subject and its body.
type record struct {
	subject string
	contract.Result
}

// deadLetter is a dead letter as stored, with its command's id.
type deadLetter struct {
	subject, id, project, class string
}

type projectRecords struct {
	results []record
	dead    []deadLetter
}

func (r *projectsRig) records(t *testing.T) projectRecords {
	t.Helper()
	var recs projectRecords
	for _, m := range readStream(t, r.js, "CHAT_RESULTS") {
		var res contract.Result
		if err := json.Unmarshal(m.Data, &res); err != nil {
			t.Fatalf("result on %s: %v", m.Subject, err)
		}
		recs.results = append(recs.results, record{subject: m.Subject, Result: res})
	}
	for _, m := range readStream(t, r.js, "CHAT_DLQ") {
		var dl contract.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatalf("dead letter on %s: %v", m.Subject, err)
		}
		var cmd struct{ ID string }
		_ = json.Unmarshal(dl.Command, &cmd)
		recs.dead = append(recs.dead, deadLetter{subject: m.Subject, id: cmd.ID, project: dl.Project, class: string(dl.Error.Class) + ": " + dl.Error.Message})
	}
	return recs
}

// byProject is the last result of each of b's commands, by id.
func (p projectRecords) byProject(b batch) map[string]record {
	out := map[string]record{}
	for _, res := range p.results {
		if _, ok := b.index(res.ID); ok {
			out[res.ID] = res
		}
	}
	return out
}

func (p projectRecords) done(b batch) int { return len(p.byProject(b)) }

// readStream reads every message a stream holds now. Right after workers
// drained, the cluster may answer a request with "no responders" while a
// leader moves: the read starts again until the deadline.
func readStream(t *testing.T, js jetstream.JetStream, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		out, err := tryReadStream(ctx, js, stream)
		if err == nil {
			return out
		}
		if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			t.Fatalf("%s: %v", stream, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tryReadStream(ctx context.Context, js jetstream.JetStream, stream string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	last := s.CachedInfo().State.LastSeq
	var out []*jetstream.RawStreamMsg
	if s.CachedInfo().State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for read := uint64(0); read < last; {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			read = md.Sequence.Stream
			out = append(out, &jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: read, Data: m.Data()})
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("read up to sequence %d of %d", read, last)
		}
	}
	return out, nil
}

// checkRecords: at most one result for each of b's commands, each on the project's result subject for its type and
// chat, naming the project, succeeded.
func checkRecords(t *testing.T, b batch, recs projectRecords) {
	t.Helper()
	count := map[string]int{}
	wrong := 0
	for _, res := range recs.results {
		i, ok := b.index(res.ID)
		if !ok {
			continue
		}
		count[res.ID]++
		want := b.subjects().Result(b.typ, b.chat(i))
		if res.subject != want || res.Project != b.project.name || res.Status != "succeeded" || res.ChatID != b.chat(i) {
			if wrong++; wrong <= 5 {
				t.Errorf("result of %s on %s, project %q, status %s, chat %s; want on %s, project %q, succeeded, chat %s",
					res.ID, res.subject, res.Project, res.Status, res.ChatID, want, b.project.name, b.chat(i))
			}
		}
	}
	if wrong > 5 {
		t.Errorf("... %d results of %s on the wrong subject or with the wrong fields", wrong, b.project.name)
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("%s: %d results, want one", id, n)
		}
	}
	t.Logf("project %s: %d of %d commands have a result", b.project.name, len(count), b.n)
}

// checkEffects: the simulator applied each of b's commands at most once,
// as the command says, and exactly those with a result (every worker has
// drained, so none is between its call and its record).
func checkEffects(t *testing.T, b batch, effects []chatsim.Effect, recs projectRecords) {
	t.Helper()
	applied := map[string]int{}
	for _, e := range effects {
		i, ok := b.index(e.IdempotencyKey)
		if !ok {
			continue
		}
		applied[e.IdempotencyKey]++
		if e.Op != string(b.typ) || e.ChatID != b.chat(i) || e.Content != b.content(i) {
			t.Errorf("effect of %s: %s on chat %s with %q; want %s on chat %s with %q",
				e.IdempotencyKey, e.Op, e.ChatID, e.Content, b.typ, b.chat(i), b.content(i))
		}
	}
	for id, n := range applied {
		if n > 1 {
			t.Errorf("%s applied %d times, want once", id, n)
		}
	}
	withResult := recs.byProject(b)
	if !maps.Equal(presence(applied), presence(withResult)) {
		var noResult, noEffect []string
		for id := range applied {
			if _, ok := withResult[id]; !ok {
				noResult = append(noResult, id)
			}
		}
		for id := range withResult {
			if applied[id] == 0 {
				noEffect = append(noEffect, id)
			}
		}
		t.Errorf("project %s: %d effects without a result (%v), %d results without an effect (%v)",
			b.project.name, len(noResult), first(noResult, 5), len(noEffect), first(noEffect, 5))
	}
}

func presence[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func first(s []string, n int) []string {
	slices.Sort(s)
	return s[:min(n, len(s))]
}

func (r *projectsRig) effects(t *testing.T) []chatsim.Effect {
	t.Helper()
	status, body := get(t, "http://"+r.sim.HostAddr(t, containers.SimPort)+"/_sim/effects")
	var effects []chatsim.Effect
	if status != http.StatusOK {
		t.Fatalf("GET /_sim/effects: %d %.300s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &effects); err != nil {
		t.Fatalf("GET /_sim/effects: %v", err)
	}
	return effects
}

// probeKeys checks that the effect of each of ids (commands of b) was made
// with b's key. The simulator honours Idempotency-Key per API key: a note
// posted with b's key and a command's id as Idempotency-Key is answered
// with the stored effect of that command (its chat) when b's key made it,
// and applied afresh (to the probe's chat) otherwise. One probe with the
// other project's key must be applied afresh: the control that the ledger
// tells keys apart.
func (r *projectsRig) probeKeys(t *testing.T, b batch, ids []string, other simProject) {
	t.Helper()
	if len(ids) == 0 {
		t.Errorf("project %s: no command to probe", b.project.name)
		return
	}
	wrong := 0
	for _, id := range ids {
		i, _ := b.index(id)
		if got := r.probe(t, b.project, id); got != b.chat(i) {
			wrong++
			t.Errorf("%s: a probe with project %s's key and its id was applied to %q, not replayed from chat %s: its effect was not made with %s's key",
				id, b.project.name, got, b.chat(i), b.project.name)
		}
	}
	if got := r.probe(t, other, ids[0]); got != probeChat(ids[0]) {
		t.Errorf("control: a probe with project %s's key and %s's id was answered for chat %q, want a fresh effect on %s",
			other.name, ids[0], got, probeChat(ids[0]))
	}
	t.Logf("project %s: %d commands probed, %d of them not made with its key", b.project.name, len(ids), wrong)
}

func probeChat(id string) string { return "probe-" + id }

// probe posts a note with p's credentials and Idempotency-Key id, and
// returns the chat of the effect it was answered with. A 429 (answered
// before the ledger is consulted) is asked again.
func (r *projectsRig) probe(t *testing.T, p simProject, id string) string {
	t.Helper()
	q := url.Values{"api_key": {p.key}, "site_token": {p.site}}
	u := "http://" + r.sim.HostAddr(t, containers.SimPort) + "/chat/v1/chats/" + url.PathEscape(probeChat(id)) + "/notes?" + q.Encode()
	var answer struct {
		PersonID string `json:"person_id"`
	}
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"content":"probe"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("probe of %s with %s's key: over budget", id, p.name)
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("probe of %s with %s's key: %d %.300s", id, p.name, resp.StatusCode, body)
		}
		return json.Unmarshal(body, &answer)
	})
	return answer.PersonID
}
