package execute

import (
	"errors"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

// ClassOf classifies err as contract.ClassOf does, and also knows the
// classes of the Chat API client's errors. (The idempotency store's
// conflict is a *contract.Error of class conflict itself.) It looks
// through wrapping.
func ClassOf(err error) contract.Class {
	var e *contract.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Class
	case errors.Is(err, chat.ErrRetryable):
		return contract.ClassRetryable
	case errors.Is(err, chat.ErrPermanent):
		return contract.ClassPermanent
	}
	return contract.ClassOf(err)
}

// The command's limit and the client's must agree: a chat ID the command
// accepts is one the client sends. This fails to compile when they differ.
var _ = [1]struct{}{}[contract.MaxChatIDBytes-chat.MaxChatIDLen]
