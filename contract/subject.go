package contract

import "strings"

// DefaultPrefix is the first token of every subject the worker uses.
const DefaultPrefix = "chat"

// Subjects names the subjects of one deployment. The zero value uses
// DefaultPrefix.
type Subjects struct {
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Command is the subject a command of type t for chatID is published on.
func (s Subjects) Command(t Type, chatID string) string {
	return s.prefix() + ".commands." + string(t) + "." + Token(chatID)
}

// Result is the subject of the result of a command of type t for chatID.
func (s Subjects) Result(t Type, chatID string) string {
	return s.prefix() + ".results." + string(t) + "." + Token(chatID)
}

// DeadLetter is the subject of a dead letter for a command of type t whose
// subject carried chatToken. Use InvalidDeadLetter when no type can be read.
func (s Subjects) DeadLetter(t Type, chatToken string) string {
	return s.prefix() + ".dlq." + string(t) + "." + chatToken
}

// InvalidDeadLetter is the subject of a dead letter for a message whose
// subject could not be parsed: chat.dlq.invalid.<the rest of its subject>.
func (s Subjects) InvalidDeadLetter(subject string) string {
	rest := strings.TrimPrefix(subject, s.prefix()+".commands.")
	if rest == "" || rest == subject {
		rest = "unknown"
	}
	return s.prefix() + ".dlq.invalid." + rest
}

// CommandsFilter, ResultsFilter and DeadLettersFilter capture every subject
// of their kind; they are the subjects of the three streams.
func (s Subjects) CommandsFilter() string    { return s.prefix() + ".commands.>" }
func (s Subjects) ResultsFilter() string     { return s.prefix() + ".results.>" }
func (s Subjects) DeadLettersFilter() string { return s.prefix() + ".dlq.>" }

// ChatCommandsFilter captures the commands of every type for the chat
// whose token is chatToken.
func (s Subjects) ChatCommandsFilter(chatToken string) string {
	return s.prefix() + ".commands.*." + chatToken
}

// ParseCommand splits a command subject into its type and chat token. The
// token is returned as it stands in the subject; compare it with
// Token(cmd.ChatID).
func (s Subjects) ParseCommand(subject string) (Type, string, error) {
	head := s.prefix() + ".commands."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", "", Invalidf("subject %q is not a command subject: it should start with %q", subject, head)
	}
	typ, token, ok := strings.Cut(rest, ".")
	if !ok || typ == "" || token == "" || strings.Contains(token, ".") {
		return "", "", Invalidf("subject %q should be %s<type>.<chat token>", subject, head)
	}
	t := Type(typ)
	if !t.Known() {
		return "", "", Invalidf("unknown command type %q in subject %q: want one of %s", typ, subject, typeList)
	}
	if _, err := ParseToken(token); err != nil {
		return "", "", err
	}
	return t, token, nil
}

// Schedule returns the subject of the schedule of the command of type t for
// chatID with the given id.
func (s Subjects) Schedule(t Type, chatID, id string) string {
	return s.prefix() + ".schedules." + string(t) + "." + Token(chatID) + "." + Token(id)
}

// Debounce returns the subject of the pending debounced command of type t
// for chatID with the key: one per key, so publishing a newer command there
// replaces the pending one. Its five tokens after the prefix (the id of a
// schedule is the fourth) keep a key from ever naming a schedule's id.
func (s Subjects) Debounce(t Type, chatID, key string) string {
	return s.prefix() + ".schedules." + string(t) + "." + Token(chatID) + ".debounce." + Token(key)
}

// DebounceFilter captures every pending debounced command.
func (s Subjects) DebounceFilter() string { return s.prefix() + ".schedules.*.*.debounce.*" }

// SchedulesFilter captures every schedule. The commands stream captures it
// too, because the server requires a schedule's target to be in the
// schedule's own stream.
func (s Subjects) SchedulesFilter() string { return s.prefix() + ".schedules.>" }

// ScheduleIDFilter captures the schedules of the command id, whatever its
// type and chat.
func (s Subjects) ScheduleIDFilter(id string) string {
	return s.prefix() + ".schedules.*.*." + Token(id)
}

const upperHex = "0123456789ABCDEF"

// Token is the chat token of a chat ID: every byte outside A-Z a-z 0-9 - _ ~
// written as %XX with uppercase hex, so that any chat ID is a single subject
// token. "email:jo@example.com" becomes "email%3Ajo%40example%2Ecom".
func Token(chatID string) string {
	n := 0
	for i := 0; i < len(chatID); i++ {
		if !unreserved(chatID[i]) {
			n++
		}
	}
	if n == 0 {
		return chatID
	}
	var b strings.Builder
	b.Grow(len(chatID) + 2*n)
	for i := 0; i < len(chatID); i++ {
		c := chatID[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

// ParseToken is the inverse of Token. It accepts only the canonical form, so
// that one chat ID has exactly one token.
func ParseToken(token string) (string, error) {
	if token == "" {
		return "", Invalidf("empty chat token")
	}
	if !strings.Contains(token, "%") {
		for i := 0; i < len(token); i++ {
			if !unreserved(token[i]) {
				return "", Invalidf("chat token %q has the byte %q, which must be written as %%%02X", token, token[i], token[i])
			}
		}
		return token, nil
	}
	var b strings.Builder
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case unreserved(c):
			b.WriteByte(c)
		case c == '%':
			if i+2 >= len(token) || unhex(token[i+1]) < 0 || unhex(token[i+2]) < 0 {
				return "", Invalidf("chat token %q has a %% not followed by two uppercase hex digits", token)
			}
			v := byte(unhex(token[i+1])<<4 | unhex(token[i+2]))
			if unreserved(v) {
				return "", Invalidf("chat token %q escapes %q, which must be written as itself", token, v)
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", Invalidf("chat token %q has the byte %q, which must be written as %%%02X", token, c, c)
		}
	}
	return b.String(), nil
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~'
}

// unhex accepts uppercase hex only (the canonical form).
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
