package contract

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// Run one target longer with, for example:
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 10m ./actions
//
// Seeds live in testdata/fuzz/<target>; a failing input found by the fuzzer
// is written there too and then runs with every go test.

// FuzzDecode feeds arbitrary subjects and bodies to Decode. Every input is
// either a command that passes Validate and matches its subject exactly, or
// an error of class invalid with a printable message: nothing in between,
// and no panic.
func FuzzDecode(f *testing.F) {
	f.Add("chat.commands.send.abc", []byte(`{"id":"1","type":"send","chat_id":"abc","content":"Hello!"}`))
	f.Add("chat.commands.archive.email%3Ajo%40example%2Ecom", []byte(`{"id":"1","type":"archive","chat_id":"email:jo@example.com","metadata":{"a":[1,{"b":null}]}}`))
	f.Add("chat.commands.note.%2E%2E", []byte(`{"id":"1","type":"note","chat_id":"..","content":"x"}`))
	f.Add("chat.commands.send.a", []byte("{\"id\":\"\x00\",\"type\":\"send\",\"chat_id\":\"a\",\"content\":\"\xff\"}"))
	f.Add("chat.commands.send.a", []byte(strings.Repeat("[", MaxJSONDepth+1)))
	f.Add("chat.commands.send.a", []byte(`{"id":"1","type":"send","chat_id":"a","content":"x","site_token":"GSN-1-S","from":"bot","metadata":null}`))
	f.Add("chat.commands.send.a%2F..%3F%23", []byte(`{"id":"1","type":"send","chat_id":"a/..?#","content":"\u0000"}`))
	s := Subjects{}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		cmd, err := Decode(s, subject, data)
		if err != nil {
			if ClassOf(err) != ClassInvalid {
				t.Fatalf("error of class %q, want invalid: %v", ClassOf(err), err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("message is not UTF-8: %q", err.Error())
			}
			return
		}
		if err := cmd.Validate(); err != nil {
			t.Fatalf("decoded a command that does not validate: %v", err)
		}
		if got := s.Command(cmd.Type, cmd.ChatID); got != subject {
			t.Fatalf("decoded from %q, but the command's subject is %q", subject, got)
		}
		switch {
		case len(data) > MaxMessageBytes, len(cmd.ID) > MaxIDBytes, len(cmd.ChatID) > MaxChatIDBytes, len(cmd.Content) > MaxContentBytes:
			t.Fatalf("a limit was not enforced: %d-byte body, id %d, chat_id %d, content %d", len(data), len(cmd.ID), len(cmd.ChatID), len(cmd.Content))
		}
		// What the worker decoded, an app can publish again and get the same
		// command (the same idempotency hash).
		again, err := json.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		cmd2, err := Decode(s, subject, again)
		if err != nil {
			t.Fatalf("re-encoded command %s does not decode: %v", again, err)
		}
		if cmd2.Hash() != cmd.Hash() {
			t.Fatalf("hash changed after a round trip: %+v vs %+v", cmd, cmd2)
		}
	})
}

// FuzzToken checks that every chat ID has a token that is one subject
// token (no '.', '*', '>', space or control bytes) and maps back to it.
func FuzzToken(f *testing.F) {
	for _, id := range []string{"abc123", "email:jo@example.com", "..", "a.b", "*", ">", "a b\t\r\n\x00", "%2F", "/../x?y#z", "é\xff", strings.Repeat("x", MaxChatIDBytes)} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tok := Token(id)
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !unreserved(c) && c != '%' {
				t.Fatalf("Token(%q) = %q has the byte %q", id, tok, c)
			}
		}
		if id == "" {
			return
		}
		back, err := ParseToken(tok)
		if err != nil || back != id {
			t.Fatalf("ParseToken(Token(%q)) = %q, %v", id, back, err)
		}
		r, err := Subjects{}.ParseCommand(Subjects{}.Command(TypeSend, id))
		if err != nil || r.Type != TypeSend || r.Chat != tok || r.Project != "" {
			t.Fatalf("ParseCommand(Command(send, %q)) = %+v, %v", id, r, err)
		}
	})
}

// FuzzParseSubject checks that a subject is accepted only in its one
// canonical form: whatever ParseCommand accepts, Command rebuilds exactly.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"chat.commands.send.abc", "chat.commands.send.email%3Ajo%40example%2Ecom", "chat.commands.send.%2e",
		"chat.commands.send.a%41", "chat.commands.send.a.b", "chat.commands.frob.a", "chat.commands.send.", "chat.commands.send.%", "chat.commands.send.%0",
		"chat.commands.archive.%2F%2E%2E%2F", "other.commands.send.a", "chat.commands.send.a b", "chat.commands.send.\x00",
		"chat.commands.acme.send.abc", "chat.commands.Acme.send.abc", "chat.commands.send.send.abc", "chat.commands.a-1.note.x%2Ey", "chat.commands.1a.send.x"} {
		f.Add(s)
	}
	s := Subjects{}
	f.Fuzz(func(t *testing.T, subject string) {
		r, err := s.ParseCommand(subject)
		if err != nil {
			if ClassOf(err) != ClassInvalid {
				t.Fatalf("error of class %q: %v", ClassOf(err), err)
			}
			return
		}
		id, err := ParseToken(r.Chat)
		if err != nil {
			t.Fatalf("ParseCommand accepted the token %q that ParseToken refuses: %v", r.Chat, err)
		}
		if got := r.Subjects(s).Command(r.Type, id); got != subject {
			t.Fatalf("ParseCommand(%q) gave %+v, which builds %q", subject, r, got)
		}
	})
}
