package export

import (
	"context"
	"strings"
)

// Sink stores export lines.
//
// A run writes each changed conversation's line with Put, then saves the
// conversation's checkpoint. A run can die between the two, so a sink must
// make the line written again by the next run harmless: either Put replaces
// an earlier line with the same ChatID and After (the Object Store sink
// names objects by them), or the sink is also the run's Checkpoints and
// rolls the checkpoints forward from its own output when it is opened (the
// file sink), so the next run never writes that line again.
type Sink interface {
	// Put stores the line of one conversation of the current run; data is
	// the line's JSON, without a newline. It returns where the line went.
	Put(ctx context.Context, l *Line, data []byte) (string, error)
	// PutRequest stores a whole conversation exported on demand (the queue's
	// export command), apart from the runs' output.
	PutRequest(ctx context.Context, l *Line, data []byte) (string, error)
	// Finish ends a run that went through every conversation and returns
	// where its output is.
	Finish(ctx context.Context) (string, error)
	// Close releases the sink. A run closed without Finish is resumed by
	// the next one.
	Close() error
}

// Checkpoints record how far each conversation was exported.
type Checkpoints interface {
	// Load returns every conversation's cursor.
	Load(ctx context.Context) (map[string]Cursor, error)
	// Save records that chatID was exported through c. Call it only after
	// the line that reaches c is stored.
	Save(ctx context.Context, chatID string, c Cursor) error
	// Flush makes saved checkpoints durable.
	Flush(ctx context.Context) error
}

// token is the contract's chat token (actions.Token): the chat ID with every
// byte outside A-Z a-z 0-9 - _ ~ written as %XX. It is repeated here, a few
// lines, so that actions can depend on this package and not the reverse;
// a test checks both agree.
func token(id string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
