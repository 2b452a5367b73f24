package chat

import (
	"context"
	"iter"
)

// DefaultPageSize is the page size of the iterators when ListOptions.Count
// is 0; MaxPageSize is the API's maximum.
const (
	DefaultPageSize = 100
	MaxPageSize     = 250
)

// AllChats iterates over all chats matching opt, fetching pages of
// opt.Count (default DefaultPageSize) from opt.Offset until a short page.
// An error is yielded once and ends the iteration.
func (c *Client) AllChats(ctx context.Context, opt ListOptions, opts ...CallOption) iter.Seq2[Chat, error] {
	return paginate(opt, func(o ListOptions) ([]Chat, error) {
		l, _, err := c.ListChats(ctx, o, opts...)
		if err != nil {
			return nil, err
		}
		return l.List, nil
	})
}

// AllFeed iterates over a chat's feed like AllChats.
func (c *Client) AllFeed(ctx context.Context, chatID string, opt ListOptions, opts ...CallOption) iter.Seq2[FeedItem, error] {
	return paginate(opt, func(o ListOptions) ([]FeedItem, error) {
		l, _, err := c.Feed(ctx, chatID, o, opts...)
		if err != nil {
			return nil, err
		}
		return l.List, nil
	})
}

func paginate[T any](opt ListOptions, page func(ListOptions) ([]T, error)) iter.Seq2[T, error] {
	if opt.Count <= 0 {
		opt.Count = DefaultPageSize
	}
	opt.Count = min(opt.Count, MaxPageSize)
	return func(yield func(T, error) bool) {
		o := opt
		for {
			items, err := page(o)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if len(items) < o.Count {
				return
			}
			o.Offset += len(items)
		}
	}
}
