package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// tenant is an app user of one project (contract v2) from
// worker-permissions.conf, connected with its own inbox prefix, with every
// asynchronous error (a permissions violation) on its connection recorded.
type tenant struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connectTenant(t *testing.T, srv *server.Server, project string) *tenant {
	t.Helper()
	errs := make(chan error, 64)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("app-"+project, project+"-pw"),
		nats.CustomInboxPrefix("_INBOX_"+project),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("connect as app-%s: %v", project, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{t: t, nc: nc, js: js, errs: errs}
}

// quiet fails the test on any error the server sent the tenant: what it
// just did must have been allowed.
func (a *tenant) quiet(what string) {
	a.t.Helper()
	if err := a.nc.Flush(); err != nil {
		a.t.Fatal(err)
	}
	select {
	case err := <-a.errs:
		a.t.Errorf("%s: %v (grant it in worker-permissions.conf)", what, err)
	default:
	}
}

// refused waits for the server's permissions violation naming subject.
func (a *tenant) refused(what, subject string) {
	a.t.Helper()
	_ = a.nc.Flush()
	select {
	case err := <-a.errs:
		if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), subject) {
			a.t.Errorf("%s: %v, want a permissions violation for %s", what, err, subject)
		}
	case <-time.After(5 * time.Second):
		a.t.Errorf("%s: allowed, want a permissions violation for %s", what, subject)
	}
}

// directGet asks for the last message on subject in stream, as a direct
// get whose subject names it (a Stream handle would need the stream's
// info, which the app may not read), and returns its body.
func (a *tenant) directGet(stream, subject string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(a.t.Context(), 2*time.Second)
	defer cancel()
	m, err := a.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream+"."+subject, nil)
	if err != nil {
		return nil, err
	}
	if status := m.Header.Get("Status"); status != "" {
		return nil, fmt.Errorf("direct get %s: status %s %s", subject, status, m.Header.Get("Description"))
	}
	return m.Data, nil
}

// tenancyServer starts the server from worker-permissions.conf and stores,
// as the operator, a result and a dead letter of projects a and b and an
// app-b consumer on each, as project b's app would have it.
func tenancyServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	srv := startConfServer(t)
	_, ojs := connect(t, srv, "operator", "o-pw", nil)
	ctx := t.Context()
	if _, err := consumer.Provision(ctx, ojs, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b"} {
		for subject, body := range map[string]string{
			"chat.results." + p + ".send.c1": `{"id":"` + p + `-1","project":"` + p + `"}`,
			"chat.dlq." + p + ".send.c2":     `{"id":"` + p + `-2","project":"` + p + `"}`,
		} {
			if _, err := ojs.Publish(ctx, subject, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for stream, filter := range map[string]string{"CHAT_RESULTS": "chat.results.b.>", "CHAT_DLQ": "chat.dlq.b.>"} {
		if _, err := ojs.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "app-b", FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	return srv, ojs
}

// TestTenantDoesItsJob: project a's app publishes and schedules its
// commands (with acknowledgements, on its own inbox prefix), reads the
// last record on its subjects, follows its results and dead letters live,
// and keeps a durable consumer on each stream filtered to its own
// records, all without a permissions violation, and sees only project a.
func TestTenantDoesItsJob(t *testing.T) {
	srv, ojs := tenancyServer(t)
	a := connectTenant(t, srv, "a")
	ctx := t.Context()

	if _, err := a.js.Publish(ctx, "chat.commands.a.send.x", []byte(`{"id":"a-3","type":"send","chat_id":"x","content":"hi"}`), jetstream.WithMsgID("a-3")); err != nil {
		t.Errorf("publish a command: %v", err)
	}
	a.quiet("publish a command")
	msg := &nats.Msg{Subject: "chat.schedules.a.note.x.a-4", Data: []byte(`{"id":"a-4","type":"note","chat_id":"x","content":"later"}`),
		Header: nats.Header{jetstream.MsgTTLHeader: {"never"}}}
	if _, err := a.js.PublishMsg(ctx, msg, jetstream.WithScheduleAt(time.Now().Add(time.Hour)), jetstream.WithScheduleTarget("chat.commands.a.note.x")); err != nil {
		t.Errorf("schedule a command: %v", err)
	}
	a.quiet("schedule a command")

	for _, g := range []struct{ stream, subject, want string }{
		{"CHAT_COMMANDS", "chat.commands.a.send.x", `"a-3"`},
		{"CHAT_COMMANDS", "chat.schedules.a.note.x.a-4", `"a-4"`},
		{"CHAT_RESULTS", "chat.results.a.send.c1", `"a-1"`},
		{"CHAT_DLQ", "chat.dlq.a.send.c2", `"a-2"`},
	} {
		body, err := a.directGet(g.stream, g.subject)
		if err != nil || !strings.Contains(string(body), g.want) {
			t.Errorf("direct get of %s: %s, %v; want %s", g.subject, body, err, g.want)
		}
		a.quiet("direct get of " + g.subject)
	}

	// Live records, with plain subscriptions.
	live := make(chan *nats.Msg, 4)
	for _, subject := range []string{"chat.results.a.>", "chat.dlq.a.>"} {
		sub, err := a.nc.ChanSubscribe(subject, live)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	a.quiet("subscribe to its results and dead letters")
	for _, subject := range []string{"chat.results.a.note.c3", "chat.dlq.a.note.c3"} {
		if _, err := ojs.Publish(ctx, subject, []byte(`{"id":"a-5"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-live:
			if m.Subject != subject {
				t.Errorf("live record on %s, want %s", m.Subject, subject)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("no live record on %s", subject)
		}
	}

	// Its durable consumers: created, read, acknowledged, looked at, removed.
	for stream, filter := range map[string]string{"CHAT_RESULTS": "chat.results.a.>", "CHAT_DLQ": "chat.dlq.a.>"} {
		cons, err := a.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "app-a", FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Errorf("create its consumer on %s: %v", stream, err)
			a.quiet("create its consumer on " + stream)
			continue
		}
		batch, err := cons.Fetch(3, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for m := range batch.Messages() {
			ids = append(ids, string(m.Data()))
			if err := m.DoubleAck(ctx); err != nil {
				t.Errorf("acknowledge on %s: %v", stream, err)
			}
		}
		if len(ids) != 2 || !strings.Contains(ids[0], `"a-`) || !strings.Contains(ids[1], `"a-`) {
			t.Errorf("read from %s: %q (%v), want project a's two records", stream, ids, batch.Error())
		}
		if info, err := cons.Info(ctx); err != nil || info.NumAckPending != 0 {
			t.Errorf("its consumer's info on %s: %+v, %v", stream, info, err)
		}
		if err := a.js.DeleteConsumer(ctx, stream, "app-a"); err != nil {
			t.Errorf("remove its consumer on %s: %v", stream, err)
		}
		a.quiet("its consumer on " + stream)
	}
}

// TestTenantIsConfined: project a's app can neither publish for project b
// nor read b's results and dead letters, in any of the ways the JetStream
// API offers, nor publish v1 subjects (whose project is in the body, out of
// the permissions' sight), forge records, or delete, purge or inspect
// streams. Each attempt must meet a permissions violation.
func TestTenantIsConfined(t *testing.T) {
	srv, _ := tenancyServer(t)
	a := connectTenant(t, srv, "a")

	for _, tt := range []struct{ what, subject string }{
		{"publish b's command", "chat.commands.b.send.x"},
		{"schedule b's command", "chat.schedules.b.send.x.id1"},
		{"publish a v1 command", "chat.commands.send.x"},
		{"schedule a v1 command", "chat.schedules.send.x.id1"},
		{"publish a command with a token too many", "chat.commands.a.send.x.y"},
		{"forge a result", "chat.results.a.send.x"},
		{"forge a dead letter", "chat.dlq.a.send.x"},
		{"read b's result by subject", "$JS.API.DIRECT.GET.CHAT_RESULTS.chat.results.b.send.c1"},
		{"read b's dead letter by subject", "$JS.API.DIRECT.GET.CHAT_DLQ.chat.dlq.b.send.c2"},
		{"read any dead letter by sequence", "$JS.API.DIRECT.GET.CHAT_DLQ"},
		{"read any result by sequence", "$JS.API.STREAM.MSG.GET.CHAT_RESULTS"},
		{"read b's waiting command", "$JS.API.DIRECT.GET.CHAT_COMMANDS.chat.commands.b.send.x"},
		{"pull from b's consumer on the dead letters", "$JS.API.CONSUMER.MSG.NEXT.CHAT_DLQ.app-b"},
		{"pull from b's consumer on the results", "$JS.API.CONSUMER.MSG.NEXT.CHAT_RESULTS.app-b"},
		{"acknowledge for b's consumer", "$JS.ACK.CHAT_DLQ.app-b.1.1.1.1.0"},
		{"acknowledge for b's consumer of results", "$JS.ACK.CHAT_RESULTS.app-b.1.1.1.1.0"},
		{"look at b's consumer", "$JS.API.CONSUMER.INFO.CHAT_DLQ.app-b"},
		{"look at b's consumer of results", "$JS.API.CONSUMER.INFO.CHAT_RESULTS.app-b"},
		{"remove b's consumer", "$JS.API.CONSUMER.DELETE.CHAT_DLQ.app-b"},
		{"remove b's consumer of results", "$JS.API.CONSUMER.DELETE.CHAT_RESULTS.app-b"},
		{"list consumers", "$JS.API.CONSUMER.NAMES.CHAT_DLQ"},
		{"read a stream's subjects", "$JS.API.STREAM.INFO.CHAT_RESULTS"},
		{"take the worker's commands", "$JS.API.CONSUMER.MSG.NEXT.CHAT_COMMANDS.chat-worker"},
		{"delete a stream", "$JS.API.STREAM.DELETE.CHAT_DLQ"},
		{"purge the commands", "$JS.API.STREAM.PURGE.CHAT_COMMANDS"},
		{"purge the dead letters", "$JS.API.STREAM.PURGE.CHAT_DLQ"},
		{"delete a dead letter", "$JS.API.STREAM.MSG.DELETE.CHAT_DLQ"},
		{"change a stream", "$JS.API.STREAM.UPDATE.CHAT_RESULTS"},
	} {
		if err := a.nc.Publish(tt.subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		a.refused(tt.what, tt.subject)
	}

	// Consumers of its own name that would see more than project a's
	// records, and consumers of any other name, are refused with the
	// request's subject, which carries the name and the filter.
	for _, tt := range []struct{ what, stream, name, filter string }{
		{"a consumer of b's results", "CHAT_RESULTS", "app-a", "chat.results.b.>"},
		{"a consumer of every result", "CHAT_RESULTS", "app-a", "chat.results.>"},
		{"a consumer of any project's results", "CHAT_RESULTS", "app-a", "chat.results.*.send.c1"},
		{"an unfiltered consumer of the results", "CHAT_RESULTS", "app-a", ""},
		{"a consumer of b's dead letters", "CHAT_DLQ", "app-a", "chat.dlq.b.>"},
		{"an unfiltered consumer of the dead letters", "CHAT_DLQ", "app-a", ""},
		{"b's consumer, filtered to a", "CHAT_RESULTS", "app-b", "chat.results.a.>"},
		{"a consumer of another name", "CHAT_RESULTS", "mine", "chat.results.a.>"},
		{"a consumer of the commands", "CHAT_COMMANDS", "app-a", "chat.commands.a.>"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		cfg := jetstream.ConsumerConfig{Durable: tt.name, FilterSubject: tt.filter, AckPolicy: jetstream.AckExplicitPolicy}
		_, err := a.js.CreateOrUpdateConsumer(ctx, tt.stream, cfg)
		cancel()
		if err == nil {
			t.Errorf("%s: created", tt.what)
		}
		subject := "$JS.API.CONSUMER.CREATE." + tt.stream + "." + tt.name
		if tt.filter != "" {
			subject += "." + tt.filter
		}
		a.refused(tt.what, subject)
	}

	// Subscriptions: b's live records, and the replies to others' requests.
	for _, subject := range []string{"chat.results.b.>", "chat.dlq.b.>", "chat.results.>", "_INBOX.>", "_INBOX_b.>", "chat.commands.a.>"} {
		sub, err := a.nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		a.refused("subscribe to "+subject, subject)
		_ = sub.Unsubscribe()
	}
}

// TestTenantWithoutItsInboxPrefix: an app that forgets its inbox prefix
// gets no answer to a request, and says so clearly enough to fix.
func TestTenantWithoutItsInboxPrefix(t *testing.T) {
	srv, _ := tenancyServer(t)
	errs := make(chan error, 4)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("app-a", "a-pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "chat.commands.a.send.x", []byte("{}")); err == nil {
		t.Fatal("a publish acknowledged on the default inbox prefix")
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), "_INBOX.") {
			t.Errorf("%v, want a violation naming the _INBOX. subscription", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation for the default inbox")
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("the test's context ended")
	}
}
