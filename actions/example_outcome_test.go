package actions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go/jetstream"
)

// An app publishes a command and waits for what becomes of it: a result
// when it succeeds, a dead letter when it cannot.
func ExamplePublishAndWait() {
	js, stop := exampleWorker()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, c := range []actions.Commander{
		actions.Send{ID: "order-A-17", ChatID: "email:jo@example.com", Content: "Your order A-17 has shipped.", From: contract.FromAgent},
		actions.Send{ID: "order-A-18", ChatID: "missing:jo", Content: "Your order A-18 has shipped."},
	} {
		cmd, settled, err := actions.PublishAndWait(ctx, js, c, actions.Subjects{})
		switch {
		case errors.Is(err, actions.ErrNotSettled):
			fmt.Println(cmd.ID, "still running: ask actions.Status later")
		case err != nil:
			fmt.Println(err)
		case settled.Result != nil:
			fmt.Println(cmd.ID, settled.Result.Status, settled.Result.APIStatus)
		default:
			fmt.Println(cmd.ID, "dead letter:", settled.DeadLetter.Error.Class, settled.DeadLetter.Error.APIStatus)
		}
	}
	// Output:
	// order-A-17 succeeded 200
	// order-A-18 dead letter: permanent 404
}

// An app consumes every result with a durable consumer of its own, so it
// continues where it left off after a restart.
func Example_consumeResults() {
	js, stop := exampleWorker()
	defer stop()
	ctx := context.Background()
	for _, id := range []string{"r-1", "r-2"} {
		if _, err := actions.Publish(ctx, js, actions.Archive{ID: id, ChatID: "visitor-" + id}, actions.Subjects{}); err != nil {
			fmt.Println(err)
			return
		}
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, contract.DefaultResultsStream, jetstream.ConsumerConfig{
		Durable:       "orders-app",
		FilterSubject: "chat.results.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan string)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var r actions.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			_ = m.Term() // not a result: do not see it again
			return
		}
		done <- r.ID + " " + r.Status // handle it (idempotently, by id) ...
		_ = m.Ack()                   // ... then acknowledge
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Stop()
	got := map[string]bool{}
	for range 2 {
		got[<-done] = true
	}
	fmt.Println(got["r-1 succeeded"], got["r-2 succeeded"])
	// Output: true true
}

// exampleWorker starts an embedded JetStream server, the Chat API simulator
// and a worker, as `worker demo` does.
func exampleWorker() (jetstream.JetStream, func()) {
	ctx := context.Background()
	js, stopServer := exampleServer()
	cons, err := consumer.Provision(ctx, js, consumer.Topology{})
	if err != nil {
		panic(err)
	}
	store, err := idempotency.Open(ctx, js, idempotency.Config{})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewServer(chatsim.New(chatsim.Config{}))
	client, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "k", SiteToken: "s"}))
	if err != nil {
		panic(err)
	}
	w, err := consumer.New(js, cons, &execute.Executor{Client: client, SiteToken: "s"}, store, consumer.Config{Concurrency: 4})
	if err != nil {
		panic(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	return js, func() {
		cancel()
		<-done
		hs.Close()
		stopServer()
	}
}
