package execute

import (
	"errors"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/idempotency"
)

// ClassOf classifies err as actions.ClassOf does, and also knows the
// classes of the Chat API client's errors and the idempotency store's
// conflict. It looks through wrapping.
func ClassOf(err error) actions.Class {
	var e *actions.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Class
	case errors.Is(err, idempotency.ErrConflict):
		return actions.ClassConflict
	case errors.Is(err, chat.ErrRetryable):
		return actions.ClassRetryable
	case errors.Is(err, chat.ErrPermanent):
		return actions.ClassPermanent
	}
	return actions.ClassOf(err)
}

// The command's limit and the client's must agree: a chat ID the command
// accepts is one the client sends. This fails to compile when they differ.
var _ = [1]struct{}{}[actions.MaxChatIDBytes-chat.MaxChatIDLen]
