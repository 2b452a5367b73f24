package telemetry

import "go.opentelemetry.io/otel/attribute"

// Span attribute names of the worker's own spans. They say which command a
// span is about and how it ended; never credentials, never content.
const (
	AttrCommandID   = "chatworker.command.id"
	AttrCommandType = "chatworker.command.type"
	AttrChatToken   = "chatworker.chat.token"
	AttrAttempts    = "chatworker.command.attempts"
	AttrOutcome     = "chatworker.command.outcome"
	AttrErrorClass  = "chatworker.error.class"
)

// Command are the attributes that identify a command. The chat appears as
// its token, the form operators find in subjects and logs.
func Command(id, typ, chatToken string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrCommandID, id),
		attribute.String(AttrCommandType, typ),
		attribute.String(AttrChatToken, chatToken),
	}
}
