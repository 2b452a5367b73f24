package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatworker/worker/internal/schematest"
)

// TestCommandSchemaAgreesWithDecode holds schema/command.schema.json
// against Decode: every command Decode accepts validates, and every one it
// refuses for a reason a schema can express (see schemaBlind) does not. The
// inputs are the FuzzDecode corpus, the cases below, and each case's
// mutations of a valid command.
func TestCommandSchemaAgreesWithDecode(t *testing.T) {
	sch := schematest.Command(t)
	type input struct{ name, subject, body string }
	var inputs []input
	for i, in := range fuzzCorpus(t, "FuzzDecode") {
		inputs = append(inputs, input{fmt.Sprintf("corpus %d", i), in[0], in[1]})
	}
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	for _, c := range []struct{ name, subject, body string }{
		{"send", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"Hello!"}`},
		{"send with everything", "chat.commands.send.email%3Ajo%40example%2Ecom", `{"id":"1","type":"send","chat_id":"email:jo@example.com","content":"Hi","from":"agent","site_token":"GSN-1-S","metadata":{"order":"A-17"}}`},
		{"note", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"private"}`},
		{"archive", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc"}`},
		{"export", "chat.commands.export.abc", `{"id":"1","type":"export","chat_id":"abc","metadata":null}`},
		{"longest id, chat and content", "chat.commands.send." + long(256, "c"), fmt.Sprintf(`{"id":%q,"type":"send","chat_id":%q,"content":%q}`, long(128, "i"), long(256, "c"), long(16384, "x"))},
		{"content with one letter among spaces", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":" \u00a0x\u3000"}`},
		{"not JSON", "chat.commands.send.abc", `hello`},
		{"empty", "chat.commands.send.abc", ``},
		{"array", "chat.commands.send.abc", `[1,2]`},
		{"trailing data", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x"} {}`},
		{"unknown field", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","contnet":"x"}`},
		{"missing id", "chat.commands.send.abc", `{"type":"send","chat_id":"abc","content":"x"}`},
		{"missing type", "chat.commands.send.abc", `{"id":"1","chat_id":"abc","content":"x"}`},
		{"missing chat_id", "chat.commands.send.abc", `{"id":"1","type":"send","content":"x"}`},
		{"id a number", "chat.commands.send.abc", `{"id":1,"type":"send","chat_id":"abc","content":"x"}`},
		{"id null", "chat.commands.send.abc", `{"id":null,"type":"send","chat_id":"abc","content":"x"}`},
		{"empty id", "chat.commands.send.abc", `{"id":"","type":"send","chat_id":"abc","content":"x"}`},
		{"long id", "chat.commands.send.abc", fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"x"}`, long(129, "i"))},
		{"empty chat", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"","content":"x"}`},
		{"long chat", "chat.commands.send." + long(257, "c"), fmt.Sprintf(`{"id":"1","type":"send","chat_id":%q,"content":"x"}`, long(257, "c"))},
		{"dot chat", "chat.commands.send.%2E", `{"id":"1","type":"send","chat_id":".","content":"x"}`},
		{"dot dot chat", "chat.commands.send.%2E%2E", `{"id":"1","type":"send","chat_id":"..","content":"x"}`},
		{"send without content", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc"}`},
		{"note without content", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc"}`},
		{"empty content", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":""}`},
		{"blank content", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":" \t\n\u00a0\u2003"}`},
		{"content null", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":null}`},
		{"long content", "chat.commands.send.abc", fmt.Sprintf(`{"id":"1","type":"send","chat_id":"abc","content":%q}`, long(16385, "x"))},
		{"archive with content", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc","content":"x"}`},
		{"archive with empty content", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc","content":""}`},
		{"export with content", "chat.commands.export.abc", `{"id":"1","type":"export","chat_id":"abc","content":"x"}`},
		{"from on note", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"x","from":"agent"}`},
		{"from on archive", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc","from":"bot"}`},
		{"bad from", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","from":"visitor"}`},
		{"empty from", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","from":""}`},
		{"empty site_token", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","site_token":""}`},
		{"site_token a number", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","site_token":7}`},
		{"metadata an array", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","metadata":[1]}`},
		{"metadata a string", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","metadata":"m"}`},
		{"unknown type", "chat.commands.send.abc", `{"id":"1","type":"delete","chat_id":"abc"}`},
		{"type a number", "chat.commands.send.abc", `{"id":"1","type":3,"chat_id":"abc","content":"x"}`},
		{"not_after not a time", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","not_after":"tomorrow"}`},
		{"not_after a number", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","not_after":1767225600}`},
		{"quiet hours", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":{"start":"21:00","end":"08:00","tz":"Europe/London"}}`},
		{"quiet hours within a day", "chat.commands.archive.abc", `{"id":"1","type":"archive","chat_id":"abc","quiet_hours":{"start":"12:30","end":"13:45","tz":"Asia/Tokyo"}}`},
		{"quiet hours at 24:00", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":{"start":"21:00","end":"24:00","tz":"UTC"}}`},
		{"quiet hours in one digit", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":{"start":"9:00","end":"10:00","tz":"UTC"}}`},
		{"quiet hours without a zone", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":{"start":"21:00","end":"08:00"}}`},
		{"quiet hours with days", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":{"start":"21:00","end":"08:00","tz":"UTC","days":[1]}}`},
		{"quiet hours a string", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","quiet_hours":"21:00-08:00"}`},
		{"frequency cap", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":3,"per":"24h"}}`},
		{"frequency cap of 30 days", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":100,"per":"30d"}}`},
		{"frequency cap in minutes", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"43200m"}}`},
		{"frequency cap over 30 days", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"721h"}}`},
		{"frequency cap of 0", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":0,"per":"1h"}}`},
		{"frequency cap over 100", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":101,"per":"1h"}}`},
		{"frequency cap without a unit", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"24"}}`},
		{"frequency cap in seconds", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"60s"}}`},
		{"frequency cap with a leading zero", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"024h"}}`},
		{"frequency cap without per", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","frequency_cap":{"max":1}}`},
		{"frequency cap on a note", "chat.commands.note.abc", `{"id":"1","type":"note","chat_id":"abc","content":"x","frequency_cap":{"max":1,"per":"1h"}}`},
		// Refused for reasons no schema sees: Decode refuses them, the schema
		// need not.
		{"type disagrees with the subject", "chat.commands.note.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x"}`},
		{"chat disagrees with the subject", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abd","content":"x"}`},
		{"long id in bytes, not in characters", "chat.commands.send.abc", fmt.Sprintf(`{"id":%q,"type":"send","chat_id":"abc","content":"x"}`, long(100, "é"))},
		{"invalid UTF-8", "chat.commands.send.abc", "{\"id\":\"1\",\"type\":\"send\",\"chat_id\":\"abc\",\"content\":\"\xff\"}"},
		{"too deep", "chat.commands.send.c", `{"id":"1","type":"send","chat_id":"c","content":"hi","metadata":` + long(MaxJSONDepth, `{"a":`) + `1` + long(MaxJSONDepth, `}`) + `}`},
		{"too big", "chat.commands.send.abc", `{"id":"1","type":"send","chat_id":"abc","content":"x","metadata":{"m":"` + long(MaxMessageBytes, "m") + `"}}`},
	} {
		inputs = append(inputs, input(c))
	}
	s := Subjects{}
	accepted, refused, blind := 0, 0, 0
	for _, in := range inputs {
		_, decodeErr := Decode(s, in.subject, []byte(in.body))
		schemaErr := sch.Check([]byte(in.body))
		switch {
		case decodeErr == nil:
			accepted++
			if schemaErr != nil {
				t.Errorf("%s: Decode accepts %q but the schema refuses it: %v", in.name, clipForLog(in.body), schemaErr)
			}
		case schemaBlind([]byte(in.body)):
			blind++
		default:
			refused++
			if schemaErr == nil {
				t.Errorf("%s: Decode refuses %q (%v) but the schema accepts it", in.name, clipForLog(in.body), decodeErr)
			}
		}
	}
	t.Logf("%d inputs: %d accepted, %d refused by both, %d refused for reasons outside a schema", len(inputs), accepted, refused, blind)
	if accepted < 5 || refused < 30 {
		t.Errorf("too few inputs of a kind (%d accepted, %d refused): the test checks little", accepted, refused)
	}
}

// schemaBlind reports whether Decode may refuse body for a reason a JSON
// Schema cannot express: the subject (body alone decodes), the byte limits
// on the body and on fields whose characters are within the schema's
// maxLength, invalid UTF-8, and nesting depth.
func schemaBlind(body []byte) bool {
	if _, err := DecodeBody(body); err == nil {
		return true // refused for its subject
	}
	if len(body) > MaxMessageBytes || !utf8.Valid(body) || checkDepth(body) != nil {
		return true
	}
	var fields map[string]any
	if json.Unmarshal(body, &fields) != nil {
		return false
	}
	for name, limit := range map[string]int{"id": MaxIDBytes, "chat_id": MaxChatIDBytes, "content": MaxContentBytes} {
		if v, ok := fields[name].(string); ok && len(v) > limit && utf8.RuneCountInString(v) <= limit {
			return true
		}
	}
	// not_after is in the schema ahead of the decoder: until Decode knows
	// the field, it refuses it as unknown.
	if _, ok := fields["not_after"]; ok {
		return true
	}
	return false
}

func clipForLog(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// fuzzCorpus reads the seed corpus of a two-argument (string, []byte) fuzz
// target from testdata/fuzz.
func fuzzCorpus(t *testing.T, target string) [][2]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus for %s: %v", target, err)
	}
	var out [][2]string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for _, prefix := range []string{"string(", "[]byte("} {
				if q, ok := strings.CutPrefix(line, prefix); ok {
					v, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
					if err != nil {
						t.Fatalf("%s: %q: %v", f, line, err)
					}
					vals = append(vals, v)
				}
			}
		}
		if len(vals) != 2 {
			t.Fatalf("%s: %d values, want a subject and a body", f, len(vals))
		}
		out = append(out, [2]string{vals[0], vals[1]})
	}
	return out
}

// TestPublishedCommandsValidate: what Publish sends for each typed command
// validates.
func TestPublishedCommandsValidate(t *testing.T) {
	sch := schematest.Command(t)
	for _, c := range []Commander{
		Send{ID: "1", ChatID: "email:jo@example.com", Content: "Hi", From: FromAgent, SiteToken: "GSN-1-S", Metadata: json.RawMessage(`{"a":1}`)},
		Send{ID: "2", ChatID: "c", Content: "Hi"},
		Note{ID: "3", ChatID: "c", Content: "n"},
		Archive{ID: "4", ChatID: "c"},
		Export{ID: "5", ChatID: "c"},
	} {
		data, err := json.Marshal(c.Command())
		if err != nil {
			t.Fatal(err)
		}
		sch.Valid(t, data)
	}
}
