package chat

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// SendMessage posts a message to a chat (POST /chats/{id}/messages). An
// empty req.From is sent as "client"; other values than client, agent and bot
// are refused with ErrInvalidRequest.
func (c *Client) SendMessage(ctx context.Context, chatID string, req SendMessageRequest, opts ...CallOption) (*Message, *Response, error) {
	p, err := chatPath(chatID, "/messages")
	if err != nil {
		return nil, nil, err
	}
	switch req.From {
	case "":
		req.From = FromClient
	case FromClient, FromAgent, FromBot:
	default:
		return nil, nil, fmt.Errorf("%w: from must be client, agent or bot", ErrInvalidRequest)
	}
	m := new(Message)
	resp, err := c.call(ctx, "send", http.MethodPost, p, nil, req, m, opts)
	if err != nil {
		return nil, resp, err
	}
	return m, resp, nil
}

// LeaveNote leaves a private note in a chat (POST /chats/{id}/notes).
func (c *Client) LeaveNote(ctx context.Context, chatID string, req NoteRequest, opts ...CallOption) (*Message, *Response, error) {
	p, err := chatPath(chatID, "/notes")
	if err != nil {
		return nil, nil, err
	}
	m := new(Message)
	resp, err := c.call(ctx, "note", http.MethodPost, p, nil, req, m, opts)
	if err != nil {
		return nil, resp, err
	}
	return m, resp, nil
}

// Archive archives a chat (POST /chats/{id}/archive). A later message from
// the visitor moves it back to the Inbox.
func (c *Client) Archive(ctx context.Context, chatID string, opts ...CallOption) (*Response, error) {
	p, err := chatPath(chatID, "/archive")
	if err != nil {
		return nil, err
	}
	return c.call(ctx, "archive", http.MethodPost, p, nil, nil, nil, opts)
}

// ListChats lists conversations, most recent activity first (GET /chats).
func (c *Client) ListChats(ctx context.Context, opt ListOptions, opts ...CallOption) (*ChatList, *Response, error) {
	l := new(ChatList)
	resp, err := c.call(ctx, "list_chats", http.MethodGet, "/chats", opt.values(), nil, l, opts)
	if err != nil {
		return nil, resp, err
	}
	return l, resp, nil
}

// GetChat returns one conversation (GET /chats/{id}).
func (c *Client) GetChat(ctx context.Context, chatID string, opts ...CallOption) (*Chat, *Response, error) {
	p, err := chatPath(chatID, "")
	if err != nil {
		return nil, nil, err
	}
	ch := new(Chat)
	resp, err := c.call(ctx, "get_chat", http.MethodGet, p, nil, nil, ch, opts)
	if err != nil {
		return nil, resp, err
	}
	return ch, resp, nil
}

// Feed returns messages and events of a chat (GET /chats/{id}/feed).
func (c *Client) Feed(ctx context.Context, chatID string, opt ListOptions, opts ...CallOption) (*FeedList, *Response, error) {
	p, err := chatPath(chatID, "/feed")
	if err != nil {
		return nil, nil, err
	}
	l := new(FeedList)
	resp, err := c.call(ctx, "feed", http.MethodGet, p, opt.values(), nil, l, opts)
	if err != nil {
		return nil, resp, err
	}
	return l, resp, nil
}

// Messages returns messages of a chat, newest first (GET /chats/{id}/messages).
func (c *Client) Messages(ctx context.Context, chatID string, opt MessagesOptions, opts ...CallOption) (*MessageList, *Response, error) {
	p, err := chatPath(chatID, "/messages")
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	if opt.Limit > 0 {
		q.Set("limit", strconv.Itoa(opt.Limit))
	}
	if opt.Offset > 0 {
		q.Set("offset", strconv.Itoa(opt.Offset))
	}
	l := new(MessageList)
	resp, err := c.call(ctx, "messages", http.MethodGet, p, q, nil, l, opts)
	if err != nil {
		return nil, resp, err
	}
	return l, resp, nil
}
