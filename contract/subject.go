package contract

import "strings"

// DefaultPrefix is the first token of every subject the worker uses.
const DefaultPrefix = "chat"

// Subjects names the subjects of one deployment. The zero value uses
// DefaultPrefix and the v1 subjects, which carry no project.
//
// With Project set (contract v2) every subject of a command, its result, its
// dead letter and its schedule carries the project's name after its kind:
// chat.commands.<project>.<type>.<chat>. The filters then capture that
// project's subjects only.
type Subjects struct {
	Prefix  string
	Project string
}

// For returns s for the project named (v2), or for v1 subjects when name is
// empty.
func (s Subjects) For(name string) Subjects {
	s.Project = name
	return s
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// head is "<prefix>.<kind>." followed, in v2, by "<project>.".
func (s Subjects) head(kind string) string {
	h := s.prefix() + "." + kind + "."
	if s.Project != "" {
		h += s.Project + "."
	}
	return h
}

// Command is the subject a command of type t for chatID is published on.
func (s Subjects) Command(t Type, chatID string) string {
	return s.head("commands") + string(t) + "." + Token(chatID)
}

// Result is the subject of the result of a command of type t for chatID.
func (s Subjects) Result(t Type, chatID string) string {
	return s.head("results") + string(t) + "." + Token(chatID)
}

// DeadLetter is the subject of a dead letter for a command of type t whose
// subject carried chatToken. Use InvalidDeadLetter when no type can be read.
func (s Subjects) DeadLetter(t Type, chatToken string) string {
	return s.head("dlq") + string(t) + "." + chatToken
}

// InvalidDeadLetter is the subject of a dead letter for a message whose
// subject could not be parsed: chat.dlq.invalid.<the rest of its subject>.
// When the subject names a project (v2), the dead letter stays among that
// project's: chat.dlq.<project>.invalid.<the rest>, so an app confined to
// its project sees it.
func (s Subjects) InvalidDeadLetter(subject string) string {
	s.Project = ""
	rest := strings.TrimPrefix(subject, s.head("commands"))
	if rest == "" || rest == subject {
		return s.head("dlq") + "invalid.unknown"
	}
	if name, tail, ok := strings.Cut(rest, "."); ok && tail != "" && CheckProjectName(name) == nil {
		if n := strings.Count(tail, "."); n >= 1 {
			return s.For(name).head("dlq") + "invalid." + tail
		}
	}
	return s.head("dlq") + "invalid." + rest
}

// CommandsFilter, ResultsFilter and DeadLettersFilter capture every subject
// of their kind (of the project, with Project set); without a project they
// are the subjects of the three streams.
func (s Subjects) CommandsFilter() string    { return s.head("commands") + ">" }
func (s Subjects) ResultsFilter() string     { return s.head("results") + ">" }
func (s Subjects) DeadLettersFilter() string { return s.head("dlq") + ">" }

// ConsumeFilter captures the commands one durable consumer delivers: the
// project's (v2), or, without a project, the v1 subjects only (one token
// fewer, so no v2 subject matches).
func (s Subjects) ConsumeFilter() string { return s.head("commands") + "*.*" }

// ChatCommandsFilter captures the commands of every type for the chat
// whose token is chatToken (in the project, with Project set; v1 subjects
// only without).
func (s Subjects) ChatCommandsFilter(chatToken string) string {
	return s.head("commands") + "*." + chatToken
}

// A Route is what a command subject says: its project (empty on a v1
// subject), its type and its chat token, as it stands in the subject.
type Route struct {
	Project string
	Type    Type
	Chat    string
}

// Subjects returns s for the route's project (v1 when it has none).
func (r Route) Subjects(s Subjects) Subjects { return s.For(r.Project) }

// ParseCommand splits a command subject into its route: a v1 subject
// (<prefix>.commands.<type>.<chat>) or a v2 one
// (<prefix>.commands.<project>.<type>.<chat>). The chat token is returned as
// it stands in the subject; compare it with Token(cmd.ChatID). s.Project is
// ignored: any project's subject parses.
func (s Subjects) ParseCommand(subject string) (Route, error) {
	s.Project = ""
	head := s.head("commands")
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return Route{}, Invalidf("subject %q is not a command subject: it should start with %q", subject, head)
	}
	parts := strings.Split(rest, ".")
	var r Route
	switch len(parts) {
	case 2:
		r.Type, r.Chat = Type(parts[0]), parts[1]
	case 3:
		if reservedName(parts[0]) {
			// A v1 subject whose chat token has a dot, most likely.
			return Route{}, Invalidf("subject %q should be %s<type>.<chat token> or %s<project>.<type>.<chat token>, and a chat token has no dot", subject, head, head)
		}
		if err := CheckProjectName(parts[0]); err != nil {
			return Route{}, Invalidf("subject %q: %s", subject, err.Error())
		}
		r.Project, r.Type, r.Chat = parts[0], Type(parts[1]), parts[2]
	default:
		return Route{}, Invalidf("subject %q should be %s<type>.<chat token> or %s<project>.<type>.<chat token>", subject, head, head)
	}
	if r.Type == "" || r.Chat == "" {
		return Route{}, Invalidf("subject %q should be %s<type>.<chat token> or %s<project>.<type>.<chat token>", subject, head, head)
	}
	if !r.Type.Known() {
		return Route{}, Invalidf("unknown command type %q in subject %q: want one of %s", r.Type, subject, typeList)
	}
	if _, err := ParseToken(r.Chat); err != nil {
		return Route{}, err
	}
	return r, nil
}

// Schedule returns the subject of the schedule of the command of type t for
// chatID with the given id.
func (s Subjects) Schedule(t Type, chatID, id string) string {
	return s.head("schedules") + string(t) + "." + Token(chatID) + "." + Token(id)
}

// Debounce returns the subject of the pending debounced command of type t
// for chatID with the key: one per key, so publishing a newer command there
// replaces the pending one. The literal "debounce" where a schedule has its
// id, and the key after it, keep a key from ever naming a schedule's id.
func (s Subjects) Debounce(t Type, chatID, key string) string {
	return s.head("schedules") + string(t) + "." + Token(chatID) + ".debounce." + Token(key)
}

// DebounceFilter captures every pending debounced command (of the project,
// with Project set; of v1 subjects without).
func (s Subjects) DebounceFilter() string { return s.head("schedules") + "*.*.debounce.*" }

// SchedulesFilter captures every schedule (of the project, with Project
// set). The commands stream captures it too, because the server requires a
// schedule's target to be in the schedule's own stream.
func (s Subjects) SchedulesFilter() string { return s.head("schedules") + ">" }

// ScheduleIDFilter captures the schedules of the command id, whatever its
// type and chat (in the project, with Project set; v1 subjects without).
func (s Subjects) ScheduleIDFilter(id string) string {
	return s.head("schedules") + "*.*." + Token(id)
}

// A ScheduleRoute is what a schedule subject says: the route of the command
// it will publish, and its id or, for a debounced command, its key.
type ScheduleRoute struct {
	Route
	ID          string
	DebounceKey string
}

// ParseSchedule reads a schedule subject of either version:
// <prefix>.schedules.[<project>.]<type>.<chat>.<id> or
// <prefix>.schedules.[<project>.]<type>.<chat>.debounce.<key>. A v1 subject
// begins with a type after "schedules", a v2 one with a project name (which
// is never a type's name: see CheckProjectName).
func (s Subjects) ParseSchedule(subject string) (ScheduleRoute, error) {
	s.Project = ""
	head := s.head("schedules")
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return ScheduleRoute{}, Invalidf("subject %q is not a schedule subject: it should start with %q", subject, head)
	}
	parts := strings.Split(rest, ".")
	var r ScheduleRoute
	if len(parts) > 0 && !Type(parts[0]).Known() {
		if err := CheckProjectName(parts[0]); err != nil {
			return ScheduleRoute{}, Invalidf("schedule subject %q: %s", subject, err.Error())
		}
		r.Project, parts = parts[0], parts[1:]
	}
	var last string
	switch {
	case len(parts) == 3:
		last = parts[2]
	case len(parts) == 4 && parts[2] == "debounce":
		last = parts[3]
	default:
		return ScheduleRoute{}, Invalidf("schedule subject %q should be %s[<project>.]<type>.<chat token>.<id token>", subject, head)
	}
	r.Type, r.Chat = Type(parts[0]), parts[1]
	if !r.Type.Known() {
		return ScheduleRoute{}, Invalidf("unknown command type %q in schedule subject %q", r.Type, subject)
	}
	if _, err := ParseToken(r.Chat); err != nil {
		return ScheduleRoute{}, err
	}
	v, err := ParseToken(last)
	if err != nil {
		return ScheduleRoute{}, err
	}
	if len(parts) == 4 {
		r.DebounceKey = v
	} else {
		r.ID = v
	}
	return r, nil
}

// DefaultProject is the name of the worker's default project (contract v2)
// unless its configuration names it otherwise.
const DefaultProject = "default"

// MaxProjectNameBytes bounds a project's name (contract v2).
const MaxProjectNameBytes = 32

// reservedNames cannot name a project: a command type's name or "invalid"
// right after a subject's kind would make v1 and v2 subjects ambiguous.
func reservedName(name string) bool { return name == "invalid" || Type(name).Known() }

// CheckProjectName reports whether name can name a project (contract v2):
// 1 to 32 bytes of a-z, 0-9 and -, starting with a letter, and not a
// command type's name or "invalid". Its error is of class invalid.
func CheckProjectName(name string) error {
	if name == "" || len(name) > MaxProjectNameBytes {
		return Invalidf("a project name is 1 to %d bytes, not %d", MaxProjectNameBytes, len(name))
	}
	if name[0] < 'a' || name[0] > 'z' {
		return Invalidf("project name %q should start with a letter a-z", Clip(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return Invalidf("project name %q has %q: use only a-z, 0-9 and -", Clip(name), c)
		}
	}
	if reservedName(name) {
		return Invalidf("%q cannot name a project: it is reserved (a command type, or \"invalid\")", name)
	}
	return nil
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
