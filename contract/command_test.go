package contract

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
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

// The idempotency store keeps each command's hash: the encoding may never
// change, or a command published before an upgrade would conflict with
// itself after it. The expected values were computed by the first release's
// Hash, whose code hashV1 keeps for the comparison on many commands.
func TestHashIsStable(t *testing.T) {
	golden := []struct {
		cmd  Command
		want string
	}{
		{Command{ID: "8c0f3a52-1", Type: TypeSend, ChatID: "visitor-1", Content: "Hello <b>&</b> 👋", From: FromAgent},
			"0407dbf3f4e9d15d1642e317335a2cd046d186c0a76dba4ff6cb3c6f46e7f5c9"},
		{Command{ID: "n-2", Type: TypeNote, ChatID: "c", Content: "note", SiteToken: "GSN-123", Metadata: json.RawMessage(`{ "a": [1, 2], "b": "x" }`)},
			"10424c064afbc8f800247276666ebbb2563df0ae29a658412143c3cdabcbaa71"},
		{Command{ID: "a-3", Type: TypeArchive, ChatID: "chat:3", Metadata: json.RawMessage(`{bad`)},
			"a0c421210f4347a63533dcd3b6ff6d38b9c79488479a64f65e8b1e7b7df09e10"},
	}
	for _, g := range golden {
		if got := g.cmd.Hash(); got != g.want {
			t.Errorf("%+v: hash %s, want %s", g.cmd, got, g.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(max int) string {
		runes := []rune("ab:1é👋<&\"\x00 ")
		var b strings.Builder
		for range rng.IntN(max + 1) {
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
		return b.String()
	}
	metas := []string{"", `{}`, `{"k": [1, {"x": null}]}`, `{bad`, `null`, ` {"a":"` + strings.Repeat("m", 600) + `"} `}
	for range 3000 {
		c := Command{ID: str(20), Type: Type(str(8)), ChatID: str(20), Content: str(700), From: str(6), SiteToken: str(10),
			Metadata: json.RawMessage(metas[rng.IntN(len(metas))])}
		if got, want := c.Hash(), hashV1(c); got != want {
			t.Fatalf("%+v: hash %s, the first release's %s", c, got, want)
		}
	}
}

// hashV1 is Hash as first released.
func hashV1(c Command) string {
	h := sha256.New()
	var n [20]byte
	for _, f := range [...]string{c.ID, string(c.Type), c.ChatID, c.Content, c.From, c.SiteToken} {
		h.Write(strconv.AppendInt(n[:0], int64(len(f)), 10))
		h.Write([]byte{':'})
		io.WriteString(h, f)
	}
	if len(c.Metadata) > 0 {
		var buf bytes.Buffer
		if json.Compact(&buf, c.Metadata) == nil {
			h.Write(buf.Bytes())
		} else {
			h.Write(c.Metadata)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func BenchmarkHash(b *testing.B) {
	c := Command{ID: "8c0f3a52-0000-4000-8000-000000000001", Type: TypeSend, ChatID: "bench-chat-17",
		Content: "Your order has shipped and will arrive on Tuesday.", From: FromAgent}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Hash()
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

// BenchmarkDecode is the per-command cost of reading a command: the subject,
// the body, the table's rules.
func BenchmarkDecode(b *testing.B) {
	subject := "chat.commands.send.email%3Ajo%40example%2Ecom"
	body := []byte(`{"id":"8c0f4bd2-6f0e-4b8c-9b55-3f6d1a2b7c10","type":"send","chat_id":"email:jo@example.com","content":"Your order A-17 has shipped.","from":"agent","metadata":{"order":"A-17"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(Subjects{}, subject, body); err != nil {
			b.Fatal(err)
		}
	}
}

// The same id and body in two projects (v2) are two commands: their hashes
// differ, so the idempotency store makes the second a conflict rather than
// a duplicate carrying the first project's response. A v1 command's hash
// does not change.
func TestHashCoversTheProject(t *testing.T) {
	c := Command{ID: "8c0f3a52-1", Type: TypeSend, ChatID: "visitor-1", Content: "Hello <b>&</b> 👋", From: FromAgent}
	a, b := c, c
	a.Project, b.Project = "shop-a", "shop-b"
	if a.Hash() == b.Hash() || a.Hash() == c.Hash() {
		t.Fatalf("hashes of one command in projects a, b and v1: %s, %s, %s; want three", a.Hash(), b.Hash(), c.Hash())
	}
	if got := c.Hash(); got != "0407dbf3f4e9d15d1642e317335a2cd046d186c0a76dba4ff6cb3c6f46e7f5c9" {
		t.Fatalf("a v1 command's hash changed: %s", got)
	}
}
