package contract

import (
	"errors"
	"strings"
	"testing"
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
	if _, _, err := custom.ParseCommand("acme.chat.commands.send.x"); err != nil {
		t.Errorf("custom ParseCommand: %v", err)
	}
}

func TestParseCommand(t *testing.T) {
	s := Subjects{}
	tests := []struct {
		subject string
		typ     Type
		token   string
		problem string // part of the error message; empty when valid
	}{
		{"chat.commands.send.abc", TypeSend, "abc", ""},
		{"chat.commands.archive.email%3Ajo", TypeArchive, "email%3Ajo", ""},
		{"chat.commands.send", "", "", "should be"},
		{"chat.commands.send.a.b", "", "", "should be"},
		{"chat.commands.delete.abc", "", "", "unknown command type"},
		{"chat.results.send.abc", "", "", "not a command subject"},
		{"chat.commands.send.a%2eb", "", "", "uppercase hex"},
	}
	for _, tt := range tests {
		typ, token, err := s.ParseCommand(tt.subject)
		if tt.problem == "" {
			if err != nil || typ != tt.typ || token != tt.token {
				t.Errorf("ParseCommand(%q) = %q, %q, %v; want %q, %q", tt.subject, typ, token, err, tt.typ, tt.token)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Class != ClassInvalid || !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("ParseCommand(%q) error = %v, want invalid mentioning %q", tt.subject, err, tt.problem)
		}
	}
}
