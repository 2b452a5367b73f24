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

// Check tells a key that works from one that cannot, before any work.
func ExampleClient_Check() {
	c, _, stop := newExampleClient(chatsim.Config{Credentials: map[string][]string{"demo-key": {"GSN-106863-S"}}})
	defer stop()

	ctx := context.Background()
	fmt.Println("configured key:", c.Check(ctx))
	err := c.Check(ctx, chat.WithCallCredentials(chat.Credentials{APIKey: "revoked-key", SiteToken: "GSN-106863-S"}))
	fmt.Println("revoked key is a configuration error:", errors.Is(err, chat.ErrConfig))
	// Output:
	// configured key: <nil>
	// revoked key is a configuration error: true
}

// An API answering a shape other than the one assumed does not fail the
// call: the field is left empty and a warning names it.
func ExampleWithWarnings() {
	c, sim, stop := newExampleClient(chatsim.Config{Quirks: chatsim.Quirks{ArchivedBool: true}},
		chat.WithWarnings(func(w chat.Warning) { fmt.Println(w) }))
	defer stop()
	sim.Seed(1, 1)

	l, _, err := c.ListChats(context.Background(), chat.ListOptions{})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(l.List[0].ID, l.List[0].Archived == nil, string(l.List[0].Raw)[:40])
	// Output:
	// chat: list_chats: field list[].archived is a boolean, not a number; left empty, kept as returned
	// seed-0000 true {"id":"seed-0000","archived":false,"late
}
