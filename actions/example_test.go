package actions_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An app publishes a command; Publish validates it, computes the chat token
// for the subject, sets Nats-Msg-Id to the command id and returns once
// JetStream has stored it.
func ExamplePublish() {
	ctx := context.Background()
	js, stop := exampleJetStream()
	defer stop()

	cmd, err := actions.Publish(ctx, js, actions.Send{
		ID:      "order-A-17-shipped",
		ChatID:  "email:jo@example.com",
		Content: "Your order A-17 has shipped.",
		From:    contract.FromAgent,
	}, actions.Subjects{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cmd.ID)
	fmt.Println(actions.Subjects{}.Command(cmd.Type, cmd.ChatID))

	// A command that cannot succeed is refused before it is published.
	_, err = actions.Publish(ctx, js, actions.Note{ChatID: "email:jo@example.com"}, actions.Subjects{})
	fmt.Println(err)
	// Output:
	// order-A-17-shipped
	// chat.commands.send.email%3Ajo%40example%2Ecom
	// "content" is empty: a note command needs text
}

// exampleJetStream starts an embedded JetStream server with the commands
// stream, as `worker run` or `worker provision` would create it.
func exampleJetStream() (jetstream.JetStream, func()) {
	js, stop := exampleServer()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "CHAT_COMMANDS", Subjects: []string{"chat.commands.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		panic(err)
	}
	return js, stop
}

// exampleServer starts an embedded JetStream server. Examples have no
// testing.T, so they cannot use workertest.
func exampleServer() (jetstream.JetStream, func()) {
	dir, err := os.MkdirTemp("", "actions-example-")
	if err != nil {
		panic(err)
	}
	s, err := server.NewServer(&server.Options{Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		panic("nats-server did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		panic(err)
	}
	js, _ := jetstream.New(nc)
	return js, func() { nc.Close(); s.Shutdown(); s.WaitForShutdown(); os.RemoveAll(dir) }
}
