package chat

import (
	"context"
	"errors"
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

// Check makes one cheap read (GET /chats?limit=1) to tell whether the
// client's credentials, or those of opts, and its base URL work, for
// example before a worker reports ready. It returns nil when they do. It
// returns an error matching ErrConfig when the answer blames them: 401,
// 403, code 4001, an answer that is not the Chat API's, and also any other
// refusal but 408, 425, 429 and 5xx, since the request is always the same
// and valid (a 404 for the list of chats means the base URL is wrong, even
// when the server answers in the API's words). Other errors (a network
// failure, a 5xx, a 429) say nothing about the configuration either way.
func (c *Client) Check(ctx context.Context, opts ...CallOption) error {
	_, err := c.call(ctx, "check", http.MethodGet, "/chats", ListOptions{Count: 1}.values(), nil, new(ChatList), opts)
	var ae *APIError
	if errors.As(err, &ae) && !retryableStatus(ae.StatusCode) {
		ae.checkRefused = true
	}
	return err
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
