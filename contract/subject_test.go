package contract

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	tests := []struct{ chatID, token string }{
		{"abc123", "abc123"},
		{"email:jo@example.com", "email%3Ajo%40example%2Ecom"},
		{"A-Z_a~z", "A-Z_a~z"},
		{"a.b", "a%2Eb"},
		{"a b/c", "a%20b%2Fc"},
		{"*", "%2A"},
		{">", "%3E"},
		{"ü", "%C3%BC"},
		{"%", "%25"},
	}
	for _, tt := range tests {
		if got := Token(tt.chatID); got != tt.token {
			t.Errorf("Token(%q) = %q, want %q", tt.chatID, got, tt.token)
		}
		back, err := ParseToken(tt.token)
		if err != nil || back != tt.chatID {
			t.Errorf("ParseToken(%q) = %q, %v; want %q", tt.token, back, err, tt.chatID)
		}
	}
}

func TestParseTokenRefusesNonCanonical(t *testing.T) {
	for _, token := range []string{"", "a%2eb", "%41", "a%", "a%4", "a.b", "a*b", "a%ZZ"} {
		if _, err := ParseToken(token); ClassOf(err) != ClassInvalid {
			t.Errorf("ParseToken(%q) error = %v, want class invalid", token, err)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := Subjects{}
	if got, want := s.Command(TypeSend, "email:jo@example.com"), "chat.commands.send.email%3Ajo%40example%2Ecom"; got != want {
		t.Errorf("Command = %q, want %q", got, want)
	}
	if got, want := s.Result(TypeNote, "abc"), "chat.results.note.abc"; got != want {
		t.Errorf("Result = %q, want %q", got, want)
	}
	if got, want := s.DeadLetter(TypeArchive, "abc"), "chat.dlq.archive.abc"; got != want {
		t.Errorf("DeadLetter = %q, want %q", got, want)
	}
	if got, want := s.InvalidDeadLetter("chat.commands.bogus.x"), "chat.dlq.invalid.bogus.x"; got != want {
		t.Errorf("InvalidDeadLetter = %q, want %q", got, want)
	}
	if got, want := s.InvalidDeadLetter("chat.commands."), "chat.dlq.invalid.unknown"; got != want {
		t.Errorf("InvalidDeadLetter = %q, want %q", got, want)
	}
	custom := Subjects{Prefix: "acme.chat"}
	if got, want := custom.Command(TypeSend, "x"), "acme.chat.commands.send.x"; got != want {
		t.Errorf("custom Command = %q, want %q", got, want)
	}
	if _, err := custom.ParseCommand("acme.chat.commands.send.x"); err != nil {
		t.Errorf("custom ParseCommand: %v", err)
	}
}

func TestParseCommand(t *testing.T) {
	s := Subjects{}
	tests := []struct {
		subject string
		project string
		typ     Type
		token   string
		problem string // part of the error message; empty when valid
	}{
		{"chat.commands.send.abc", "", TypeSend, "abc", ""},
		{"chat.commands.archive.email%3Ajo", "", TypeArchive, "email%3Ajo", ""},
		{"chat.commands.acme.send.abc", "acme", TypeSend, "abc", ""},
		{"chat.commands.shop-2.note.email%3Ajo", "shop-2", TypeNote, "email%3Ajo", ""},
		{"chat.commands.Acme.send.abc", "", "", "", "start with a letter"},
		{"chat.commands.2shop.send.abc", "", "", "", "start with a letter"},
		{"chat.commands.a_b.send.abc", "", "", "", "use only a-z"},
		{"chat.commands.acme.frob.abc", "", "", "", "unknown command type"},
		{"chat.commands.acme.send.a.b", "", "", "", "should be"},
		{"chat.commands.send", "", "", "", "should be"},
		{"chat.commands.send.a.b", "", "", "", "should be"},
		{"chat.commands.delete.abc", "", "", "", "unknown command type"},
		{"chat.results.send.abc", "", "", "", "not a command subject"},
		{"chat.commands.send.a%2eb", "", "", "", "uppercase hex"},
	}
	for _, tt := range tests {
		r, err := s.ParseCommand(tt.subject)
		if tt.problem == "" {
			if want := (Route{tt.project, tt.typ, tt.token}); err != nil || r != want {
				t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", tt.subject, r, err, want)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Class != ClassInvalid || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("ParseCommand(%q) error = %v, want invalid mentioning %q", tt.subject, err, tt.problem)
		}
	}
}

func TestSubjectsV2(t *testing.T) {
	v1, v2 := Subjects{}, Subjects{}.For("acme")
	tests := []struct{ got, want string }{
		{v1.Command(TypeSend, "jo@x"), "chat.commands.send.jo%40x"},
		{v2.Command(TypeSend, "jo@x"), "chat.commands.acme.send.jo%40x"},
		{v2.Result(TypeNote, "c"), "chat.results.acme.note.c"},
		{v2.DeadLetter(TypeArchive, "c"), "chat.dlq.acme.archive.c"},
		{v2.Schedule(TypeSend, "c", "id-1"), "chat.schedules.acme.send.c.id-1"},
		{v2.Debounce(TypeSend, "c", "k"), "chat.schedules.acme.send.c.debounce.k"},
		{v1.CommandsFilter(), "chat.commands.>"},
		{v2.CommandsFilter(), "chat.commands.acme.>"},
		{v2.ResultsFilter(), "chat.results.acme.>"},
		{v2.DeadLettersFilter(), "chat.dlq.acme.>"},
		{v2.SchedulesFilter(), "chat.schedules.acme.>"},
		{v1.ConsumeFilter(), "chat.commands.*.*"},
		{v2.ConsumeFilter(), "chat.commands.acme.*.*"},
		{v2.ChatCommandsFilter("c"), "chat.commands.acme.*.c"},
		{v2.ScheduleIDFilter("i"), "chat.schedules.acme.*.*.i"},
		// A message whose subject cannot be parsed stays among its
		// project's dead letters when the subject names one.
		{v1.InvalidDeadLetter("chat.commands.frob.a"), "chat.dlq.invalid.frob.a"},
		{v1.InvalidDeadLetter("chat.commands.acme.frob.a"), "chat.dlq.acme.invalid.frob.a"},
		{v1.InvalidDeadLetter("chat.commands.send.a.b"), "chat.dlq.invalid.send.a.b"},
		{v2.InvalidDeadLetter("chat.commands.acme.frob.a"), "chat.dlq.acme.invalid.frob.a"},
		{v1.InvalidDeadLetter("other.subject"), "chat.dlq.invalid.unknown"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	s := Subjects{}
	tests := []struct {
		subject string
		want    ScheduleRoute
		problem string
	}{
		{"chat.schedules.send.c.id-1", ScheduleRoute{Route: Route{Type: TypeSend, Chat: "c"}, ID: "id-1"}, ""},
		{"chat.schedules.send.c.debounce.k", ScheduleRoute{Route: Route{Type: TypeSend, Chat: "c"}, DebounceKey: "k"}, ""},
		{"chat.schedules.acme.send.c.id%3A1", ScheduleRoute{Route: Route{Project: "acme", Type: TypeSend, Chat: "c"}, ID: "id:1"}, ""},
		{"chat.schedules.acme.note.c.debounce.k", ScheduleRoute{Route: Route{Project: "acme", Type: TypeNote, Chat: "c"}, DebounceKey: "k"}, ""},
		// v2 with a chat whose token is "debounce" is a schedule, not a v1
		// debounce: a v1 subject starts with a type.
		{"chat.schedules.acme.send.debounce.k", ScheduleRoute{Route: Route{Project: "acme", Type: TypeSend, Chat: "debounce"}, ID: "k"}, ""},
		{"chat.schedules.acme.frob.c.i", ScheduleRoute{}, "unknown command type"},
		{"chat.schedules.Acme.send.c.i", ScheduleRoute{}, "start with a letter"},
		{"chat.schedules.send.c", ScheduleRoute{}, "should be"},
		{"chat.commands.send.c", ScheduleRoute{}, "not a schedule subject"},
	}
	for _, tt := range tests {
		got, err := s.ParseSchedule(tt.subject)
		if tt.problem == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseSchedule(%q) = %+v, %v; want %+v", tt.subject, got, err, tt.want)
			}
			continue
		}
		if err == nil || ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("ParseSchedule(%q) error = %v, want invalid mentioning %q", tt.subject, err, tt.problem)
		}
	}
}

func TestCheckProjectName(t *testing.T) {
	for _, ok := range []string{"a", "acme", "shop-2", "abcdefghijabcdefghijabcdefghij12"} {
		if err := CheckProjectName(ok); err != nil {
			t.Errorf("CheckProjectName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Acme", "2shop", "-a", "a.b", "a_b", "a b", "abcdefghijabcdefghijabcdefghij123", "send", "note", "archive", "export", "invalid"} {
		if err := CheckProjectName(bad); err == nil || ClassOf(err) != ClassInvalid {
			t.Errorf("CheckProjectName(%q) = %v, want an invalid error", bad, err)
		}
	}
}

func TestDecodeV2SetsProject(t *testing.T) {
	body := []byte(`{"id":"1","type":"send","chat_id":"c","content":"hi"}`)
	cmd, err := Decode(Subjects{}, "chat.commands.acme.send.c", body)
	if err != nil || cmd.Project != "acme" {
		t.Fatalf("Decode(v2) = %+v, %v; want project acme", cmd, err)
	}
	if cmd, err = Decode(Subjects{}, "chat.commands.send.c", body); err != nil || cmd.Project != "" {
		t.Fatalf("Decode(v1) = %+v, %v; want no project", cmd, err)
	}
}

// TestScheduleStaysInItsProject: the server lets a schedule target any
// subject of its stream, so a confined app could schedule into another
// project; the worker refuses a command fired by another project's
// schedule.
func TestScheduleStaysInItsProject(t *testing.T) {
	body := []byte(`{"id":"1","type":"send","chat_id":"c","content":"hi"}`)
	fired := func(schedule string) map[string][]string {
		return map[string][]string{HeaderScheduler: {schedule}, HeaderScheduleNext: {"purge"}}
	}
	tests := []struct {
		subject, schedule string
		ok                bool
	}{
		{"chat.commands.b.send.c", "chat.schedules.b.send.c.1", true},
		{"chat.commands.send.c", "chat.schedules.send.c.1", true},
		{"chat.commands.b.send.c", "chat.schedules.b.send.c.debounce.k", true},
		{"chat.commands.b.send.c", "chat.schedules.a.send.c.1", false},
		{"chat.commands.send.c", "chat.schedules.a.send.c.1", false},
		{"chat.commands.a.send.c", "chat.schedules.send.c.1", false},
		{"chat.commands.a.send.c", "not.a.schedule", false},
	}
	for _, tt := range tests {
		_, _, err := DecodeMessage(Subjects{}, tt.subject, body, fired(tt.schedule), time.Now())
		if tt.ok && err != nil {
			t.Errorf("%s fired by %s: %v, want accepted", tt.subject, tt.schedule, err)
		}
		if !tt.ok && (err == nil || ClassOf(err) != ClassInvalid) {
			t.Errorf("%s fired by %s: %v, want refused as invalid", tt.subject, tt.schedule, err)
		}
	}
	if _, _, err := DecodeMessage(Subjects{}, "chat.commands.a.send.c", body, nil, time.Now()); err != nil {
		t.Errorf("a command published directly: %v", err)
	}
}
