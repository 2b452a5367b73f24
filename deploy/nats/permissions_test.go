// Package nats_test runs the worker under the NATS permissions shipped in
// worker-permissions.conf.
package nats_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/fleet"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/schematest"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

// TestWorkerPermissions starts nats-server from worker-permissions.conf,
// provisions as the operator, runs a worker as the worker user (wired as
// `worker run` wires it) and publishes as the app. Commands must come back
// as results and dead letters with no permission violation on the worker's
// connection, and the app must not be able to forge results.
func TestWorkerPermissions(t *testing.T) {
	srv := startConfServer(t)

	// Provisioning, as `worker provision` run by the operator.
	_, ojs := connect(t, srv, "operator", "o-pw", nil)
	if _, err := consumer.Provision(t.Context(), ojs, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	if _, err := idempotency.Open(t.Context(), ojs, idempotency.Config{Owner: "operator"}); err != nil {
		t.Fatal(err)
	}

	// The worker, wired as newApp wires it, recording every async error.
	var mu sync.Mutex
	var violations []string
	_, wjs := connect(t, srv, "worker", "w-pw", func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		violations = append(violations, err.Error())
	})
	// It provisions and opens its bucket as the worker user.
	h := workertest.New(t, workertest.WithJetStream(wjs), workertest.NoWorker(),
		workertest.WithConfig(func(c *consumer.Config) { c.Concurrency = 4 }))
	if _, err := wjs.Stream(t.Context(), "CHAT_COMMANDS"); err != nil {
		t.Fatalf("readiness check: %v", err)
	}
	// The project states and the replicas' records, as every replica uses
	// them: create, watch, pause for an outage, probe, resume; join, leave.
	states, err := project.Open(t.Context(), wjs, project.Config{})
	if err != nil {
		mu.Lock()
		t.Fatalf("the worker cannot open the project states: %v (errors: %q)", err, violations)
	}
	view, err := states.Watch(t.Context(), nil)
	if err != nil {
		t.Fatalf("the worker cannot watch the project states: %v", err)
	}
	t.Cleanup(view.Stop)
	if _, _, err := states.PauseHealth(t.Context(), "default", project.CauseOutage, "test", "worker", time.Minute); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if _, err := states.TakeProbe(t.Context(), "default", "worker", time.Minute); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := states.List(t.Context()); err != nil {
		t.Fatalf("list: %v", err)
	}
	if err := states.ResumeHealth(t.Context(), "default"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	fl, err := fleet.Join(t.Context(), wjs, fleet.Config{}, fleet.Member{Name: "worker"}, nil, zaptest.NewLogger(t))
	if err != nil {
		mu.Lock()
		t.Fatalf("the worker cannot join the fleet: %v (errors: %q)", err, violations)
	}
	t.Cleanup(func() { fl.Leave(context.Background()) })
	h.Start(h.Executor)

	// The app publishes commands: two succeed (one twice: a duplicate), one
	// is dead-lettered.
	appErrs := make(chan error, 16)
	anc, ajs := connect(t, srv, "app", "a-pw", func(_ *nats.Conn, _ *nats.Subscription, err error) { appErrs <- err })
	for _, c := range []contract.Commander{
		contract.Send{ID: "p1", ChatID: "c1", Content: "hi"},
		contract.Archive{ID: "p2", ChatID: "c2"},
		contract.Send{ID: "p3", ChatID: "missing:1", Content: "x"},
	} {
		if _, err := actions.Publish(t.Context(), ajs, c, contract.Subjects{}); err != nil {
			t.Fatalf("the app cannot publish a command: %v", err)
		}
	}
	if _, err := ajs.Publish(t.Context(), "chat.commands.send.c1", []byte(`{"id":"p1","type":"send","chat_id":"c1","content":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	// And schedules one, which the server publishes as a command.
	if _, err := actions.ScheduleAt(t.Context(), ajs, contract.Note{ID: "s1", ChatID: "c3", Content: "later"}, time.Now().Add(time.Second), contract.Subjects{}); err != nil {
		t.Fatalf("the app cannot schedule a command: %v", err)
	}
	waitFor(t, ojs, "CHAT_RESULTS", 4)
	waitFor(t, ojs, "CHAT_DLQ", 1)
	waitFor(t, ojs, "CHAT_COMMANDS", 0)

	// The app reads what became of its commands: it waits for them,
	// asks their status, publishes one again, and consumes results and
	// dead letters with durable consumers of its own, all without a
	// permissions violation.
	appReads(t, ajs, appErrs)

	// The app may not forge results or dead letters, take commands from
	// the worker, delete dead letters, nor touch the API.
	for _, subject := range []string{"chat.results.send.c1", "chat.dlq.send.c1", "$JS.API.STREAM.PURGE.CHAT_COMMANDS",
		"$JS.API.CONSUMER.CREATE.CHAT_COMMANDS.thief.chat.commands.>", "$JS.API.STREAM.MSG.DELETE.CHAT_DLQ", "$JS.API.STREAM.PURGE.CHAT_DLQ",
		"$JS.API.CONSUMER.DELETE.CHAT_COMMANDS.chat-worker"} {
		if err := anc.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		_ = anc.Flush()
		select {
		case err := <-appErrs:
			if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), subject) {
				t.Errorf("app publish to %s: %v, want a permissions violation for it", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("app publish to %s: no permissions violation", subject)
		}
	}
	waitFor(t, ojs, "CHAT_RESULTS", 5) // and p4, published by appReads
	// What the worker stored under its permissions is what apps validate.
	schematest.Stream(t, ojs, "CHAT_RESULTS", schematest.Result(t))
	schematest.Stream(t, ojs, "CHAT_DLQ", schematest.DeadLetter(t))

	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("the worker hit errors under its permissions (add what it needs to worker-permissions.conf):\n%s", strings.Join(violations, "\n"))
	}
}

// startConfServer starts nats-server from worker-permissions.conf, with the
// users' passwords w-pw (worker), a-pw (app and app-a), b-pw (app-b), c-pw
// (console) and o-pw (operator).
func startConfServer(t *testing.T) *server.Server {
	t.Helper()
	for name, pw := range map[string]string{"CHATWORKER_NATS_PASSWORD": "w-pw", "CHATWORKER_APP_PASSWORD": "a-pw", "CHATWORKER_OPERATOR_PASSWORD": "o-pw",
		"CHATWORKER_APP_A_PASSWORD": "a-pw", "CHATWORKER_APP_B_PASSWORD": "b-pw", "CHATWORKER_CONSOLE_PASSWORD": "c-pw"} {
		t.Setenv(name, pw)
	}
	opts, err := server.ProcessConfigFile("worker-permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func connect(t *testing.T, srv *server.Server, user, pw string, onErr nats.ErrHandler) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, pw)}
	if onErr != nil {
		opts = append(opts, nats.ErrorHandler(onErr))
	}
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func waitFor(t *testing.T, js jetstream.JetStream, stream string, n uint64) {
	t.Helper()
	var got uint64
	workertest.Eventually(t, 15*time.Second, func() bool {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context())
		if err != nil {
			return false
		}
		got = info.State.Msgs
		return got == n
	}, "%s holds %d messages, want %d", stream, &got, n)
}

// appReads does, as the app user, everything an app does to learn what
// became of its commands, and fails on any asynchronous error (a
// permissions violation) on the app's connection.
func appReads(t *testing.T, ajs jetstream.JetStream, appErrs <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s := contract.Subjects{}
	_, got, err := actions.PublishAndWait(ctx, ajs, contract.Send{ID: "p4", ChatID: "c4", Content: "hi"}, s)
	if err != nil || got.Result == nil {
		t.Errorf("the app cannot wait for a result: %+v, %v", got, err)
	}
	_, got, err = actions.PublishAndWait(ctx, ajs, contract.Send{ID: "p5", ChatID: "missing:5", Content: "hi"}, s)
	if err != nil || got.DeadLetter == nil {
		t.Errorf("the app cannot wait for a dead letter: %+v, %v", got, err)
	}
	// Published again: the same command (still in the stream or already
	// taken), and a different one.
	if _, err := actions.Publish(ctx, ajs, contract.Send{ID: "p4", ChatID: "c4", Content: "hi"}, s); !errors.Is(err, actions.ErrAlreadyPublished) {
		t.Errorf("the app publishing p4 again: %v, want ErrAlreadyPublished", err)
	}
	if _, err := actions.Publish(ctx, ajs, contract.Send{ID: "p4", ChatID: "c4", Content: "other"}, s); !errors.Is(err, actions.ErrIDReused) {
		t.Errorf("the app reusing p4: %v, want ErrIDReused", err)
	}
	// The worker releases a dead-lettered command's claim just after its
	// dead letter is stored, and completes a record while its result is
	// stored: for that moment the record still says running.
	for id, want := range map[string]actions.State{"p1": actions.StateSucceeded, "p3": actions.StateDeadLettered, "p5": actions.StateDeadLettered} {
		st, err := actions.Status(ctx, ajs, id, s)
		for i := 0; err == nil && st.State == actions.StateRunning && i < 100; i++ {
			time.Sleep(20 * time.Millisecond)
			st, err = actions.Status(ctx, ajs, id, s)
		}
		if err != nil || st.State != want {
			t.Errorf("the app asking the status of %s: %+v, %v; want %s", id, st, err, want)
		}
	}
	// A durable consumer of its own, as docs/apps.md shows.
	for stream, n := range map[string]int{"CHAT_RESULTS": 4, "CHAT_DLQ": 2} {
		cons, err := ajs.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "my-app", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Errorf("the app cannot create a durable consumer on %s: %v", stream, err)
			continue
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Errorf("the app cannot fetch from %s: %v", stream, err)
			continue
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if err := m.DoubleAck(ctx); err != nil {
				t.Errorf("the app cannot acknowledge on %s: %v", stream, err)
			}
		}
		if got != n {
			t.Errorf("the app read %d records from %s, want %d (%v)", got, stream, n, batch.Error())
		}
	}
	select {
	case err := <-appErrs:
		t.Errorf("the app hit an error reading outcomes (add what it needs to worker-permissions.conf): %v", err)
	default:
	}
}
