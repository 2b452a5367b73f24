package chat_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/chat/chatsim"
)

// newExampleClient starts the simulator and a client pointed at it, as
// `worker demo` does.
func newExampleClient(cfg chatsim.Config, opts ...chat.Option) (*chat.Client, *chatsim.Server, func()) {
	sim := chatsim.New(cfg)
	srv := httptest.NewServer(sim)
	c, err := chat.New(append([]chat.Option{
		chat.WithBaseURL(srv.URL + "/chat/v1"),
		chat.WithCredentials(chat.Credentials{APIKey: "demo-key", SiteToken: "GSN-106863-S"}),
	}, opts...)...)
	if err != nil {
		panic(err)
	}
	return c, sim, func() { c.CloseIdleConnections(); srv.Close() }
}

func ExampleClient_SendMessage() {
	c, _, stop := newExampleClient(chatsim.Config{})
	defer stop()

	ctx := context.Background()
	m, resp, err := c.SendMessage(ctx, "email:jo@example.com",
		chat.SendMessageRequest{Content: "Your order has shipped.", From: chat.FromAgent},
		chat.WithIdempotencyKey("8c0f3a52-order-A-17"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(resp.StatusCode, m.From, m.Content)
	// Output: 200 agent Your order has shipped.
}

func ExampleClient_Archive() {
	c, _, stop := newExampleClient(chatsim.Config{})
	defer stop()

	ctx := context.Background()
	if _, err := c.Archive(ctx, "abc123"); err != nil {
		fmt.Println("error:", err)
		return
	}
	ch, _, _ := c.GetChat(ctx, "abc123")
	fmt.Println("archived:", ch.Archived != nil)

	// A message from the visitor moves the chat back to the Inbox.
	c.SendMessage(ctx, "abc123", chat.SendMessageRequest{Content: "One more question", From: chat.FromClient})
	ch, _, _ = c.GetChat(ctx, "abc123")
	fmt.Println("archived:", ch.Archived != nil)
	// Output:
	// archived: true
	// archived: false
}

func ExampleClient_AllChats() {
	c, sim, stop := newExampleClient(chatsim.Config{})
	defer stop()
	sim.Seed(300, 2)

	n := 0
	for ch, err := range c.AllChats(context.Background(), chat.ListOptions{Count: 250}) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		if n == 0 {
			fmt.Println("most recent:", ch.ID)
		}
		n++
	}
	fmt.Println("chats:", n)
	// Output:
	// most recent: seed-0299
	// chats: 300
}

// The client classifies failures; the caller decides whether and when to
// retry, honouring the server's hint.
func ExampleRetryable() {
	c, sim, stop := newExampleClient(chatsim.Config{})
	defer stop()
	sim.SetFaults(chatsim.Faults{ErrorRate: 1})

	_, _, err := c.SendMessage(context.Background(), "abc123", chat.SendMessageRequest{Content: "hi"})
	var apiErr *chat.APIError
	if errors.As(err, &apiErr) {
		fmt.Println("code:", apiErr.Code, "retryable:", chat.Retryable(err))
	}
	sim.SetFaults(chatsim.Faults{}) // fixed

	_, _, err = c.GetChat(context.Background(), "missing:42")
	fmt.Println("permanent:", errors.Is(err, chat.ErrPermanent))

	_, _, err = c.GetChat(context.Background(), "..")
	fmt.Println("invalid ID:", errors.Is(err, chat.ErrInvalidChatID))
	// Output:
	// code: 5000 retryable: true
	// permanent: true
	// invalid ID: true
}

func ExampleRetryAfter() {
	// A budget of one call per minute, and the client-side limiter off so
	// that the second call reaches the API and is refused.
	c, _, stop := newExampleClient(chatsim.Config{RatePerMinute: 1}, chat.WithRateLimit(false))
	defer stop()

	ctx := context.Background()
	c.Archive(ctx, "abc123")
	_, err := c.Archive(ctx, "abc123")
	if d, ok := chat.RetryAfter(err); ok {
		fmt.Println("retryable:", chat.Retryable(err), "retry after:", d)
	}
	// Output: retryable: true retry after: 1m0s
}
