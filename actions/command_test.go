package actions

import (
	"fmt"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	s := Subjects{}
	long := strings.Repeat("x", MaxContentBytes+1)
	deep := `{"id":"1","type":"send","chat_id":"c","content":"hi","metadata":` + strings.Repeat(`{"a":`, MaxJSONDepth) + `1` + strings.Repeat(`}`, MaxJSONDepth) + `}`
	tests := []struct {
		name, subject, body string
		problem             string // part of the message; empty when valid
	}{
		{"send", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"Hello!"}`, ""},
		{"send from agent with metadata", "chat.commands.send.email%3Ajo%40example%2Ecom",
			`{"id":"1","type":"send","chat_id":"email:jo@example.com","content":"Hi","from":"agent","site_token":"GSN-1-S","metadata":{"order":"A-17"}}`, ""},
		{"note", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"private"}`, ""},
		{"archive", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc"}`, ""},
		{"not JSON", "chat.commands.send.abc", `hello`, "not a valid JSON object"},
		{"empty", "chat.commands.send.abc", ``, "it is empty"},
		{"JSON array", "chat.commands.send.abc", `[1,2]`, "not a valid JSON object"},
		{"trailing data", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x"} {}`, "data after"},
		{"unknown field", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","contnet":"x"}`, `unknown field "contnet"`},
		{"missing id", "chat.commands.send.abc", `{"type":"send","chat_id":"abc","content":"x"}`, "lacks the required field(s) id"},
		{"missing several", "chat.commands.send.abc", `{"content":"x"}`, "id, type, chat_id"},
		{"wrong JSON type", "chat.commands.send.abc", `{"id":1,"type":"send","chat_id":"abc","content":"x"}`, `field "id" should be a string`},
		{"empty id", "chat.commands.send.abc", `{"id":"","type":"send","chat_id":"abc","content":"x"}`, `"id" is empty`},
		{"long id", "chat.commands.send.abc", fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"x"}`, strings.Repeat("i", MaxIDBytes+1)), "limit is 128"},
		{"long chat", "chat.commands.send." + Token(strings.Repeat("c", MaxChatIDBytes+1)), fmt.Sprintf(`{"id":"1","type":"send","chat_id":%q,"content":"x"}`, strings.Repeat("c", MaxChatIDBytes+1)), "limit is 256"},
		{"dot chat", "chat.commands.send.%2E%2E", `{"id":"1","type":"send","chat_id":"..","content":"x"}`, "is not a chat ID"},
		{"no content", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc"}`, `needs "content"`},
		{"blank content", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"  "}`, `"content" is empty`},
		{"content too long", "chat.commands.send.abc", fmt.Sprintf(`{"id":"1","type":"send","chat_id":"abc","content":%q}`, long), "limit is 16384"},
		{"archive with content", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc","content":"x"}`, "takes no"},
		{"from on note", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"x","from":"agent"}`, "only for send"},
		{"bad from", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","from":"visitor"}`, `"from" is "visitor"`},
		{"metadata not object", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","metadata":[1]}`, "must be a JSON object"},
		{"too deep", "chat.commands.send.c", deep, "nested more than"},
		{"type disagrees", "chat.commands.note.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x"}`, `body says type "send"`},
		{"chat disagrees", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abd","content":"x"}`, `carries "abc"`},
		{"unknown type in body", "chat.commands.send.abc", `{"id":"1","type":"delete","chat_id":"abc"}`, `unknown command type "delete"`},
		{"bad subject", "chat.commands.bogus.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x"}`, "unknown command type"},
		{"invalid UTF-8", "chat.commands.send.abc", "{\"id\":\"1\",\"type\":\"send\",\"chat_id\":\"abc\",\"content\":\"\xff\"}", "not valid UTF-8"},
		{"too big", "chat.commands.send.abc", strings.Repeat(" ", MaxMessageBytes+1), "the limit is 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := Decode(s, tt.subject, []byte(tt.body))
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if cmd.ID != "1" {
					t.Errorf("ID = %q", cmd.ID)
				}
				return
			}
			if ClassOf(err) != ClassInvalid {
				t.Fatalf("error = %v (class %q), want class invalid", err, ClassOf(err))
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not mention %q", err, tt.problem)
			}
		})
	}
}

func TestHashIgnoresLayoutButNotContent(t *testing.T) {
	s := Subjects{}
	a, err := Decode(s, "chat.commands.send.abc", []byte(`{"id":"1","type":"send","chat_id":"abc","content":"x","metadata":{"a":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(s, "chat.commands.send.abc", []byte(`{ "metadata": { "a": 1 }, "content":"x", "chat_id":"abc", "type":"send", "id":"1" }`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() {
		t.Error("same command, different layout: hashes differ")
	}
	c := a
	c.Content = "y"
	if a.Hash() == c.Hash() {
		t.Error("different content: same hash")
	}
	// Length-prefixed fields: moving bytes between fields changes the hash.
	d1 := Command{ID: "ab", Type: TypeSend, ChatID: "c", Content: "x"}
	d2 := Command{ID: "a", Type: TypeSend, ChatID: "bc", Content: "x"}
	if d1.Hash() == d2.Hash() {
		t.Error("fields run together in the hash")
	}
}

func TestTypedCommands(t *testing.T) {
	for _, c := range []Commander{
		Send{ID: "1", ChatID: "a", Content: "x", From: FromBot},
		Note{ID: "1", ChatID: "a", Content: "x"},
		Archive{ID: "1", ChatID: "a"},
	} {
		if err := c.Command().Validate(); err != nil {
			t.Errorf("%T: %v", c, err)
		}
	}
	if err := (Archive{ID: "1"}).Command().Validate(); err == nil {
		t.Error("archive without chat: no error")
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("NewID() = %q, %q", a, b)
	}
}
