package schema_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/schematest"
)

func readDoc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// codeBlocks returns the fenced blocks of a language in a document.
func codeBlocks(text, lang string) []string {
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestContractExamples: the records shown in docs/contract.md validate
// against their schemas, the command also against the decoder, and the
// chat token table is what contract.Token computes.
func TestContractExamples(t *testing.T) {
	text := readDoc(t, "../docs/contract.md")
	kinds := map[string]int{}
	for _, block := range codeBlocks(text, "json") {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(block), &fields); err != nil {
			t.Errorf("a JSON example is not JSON: %v\n%s", err, block)
			continue
		}
		switch {
		case fields["error"] != nil:
			kinds["dead letter"]++
			schematest.DeadLetter(t).Valid(t, []byte(block))
		case fields["status"] != nil:
			kinds["result"]++
			schematest.Result(t).Valid(t, []byte(block))
		default:
			kinds["command"]++
			schematest.Command(t).Valid(t, []byte(block))
			var c contract.Command
			_ = json.Unmarshal([]byte(block), &c)
			if _, err := contract.Decode(contract.Subjects{}, contract.Subjects{}.Command(c.Type, c.ChatID), []byte(block)); err != nil {
				t.Errorf("the example command does not decode: %v", err)
			}
		}
	}
	if kinds["command"] != 1 || kinds["result"] != 1 || kinds["dead letter"] != 1 {
		t.Errorf("examples found: %v, want one of each record", kinds)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| `([^`]+)` \\|$")
	_, section, _ := strings.Cut(text, "## The chat token")
	section, _, _ = strings.Cut(section, "\n## ")
	rows := row.FindAllStringSubmatch(section, -1)
	if len(rows) < 3 {
		t.Fatalf("found %d rows in the chat token table", len(rows))
	}
	for _, r := range rows {
		if got := contract.Token(r[1]); got != r[2] {
			t.Errorf("the table says the token of %q is %q; Token gives %q", r[1], r[2], got)
		}
	}
}

// between returns the text between the lines holding begin and end.
func between(t *testing.T, block, begin, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(block, begin+"\n")
	if !ok {
		t.Fatalf("no %q in the example", begin)
	}
	i := strings.LastIndex(rest[:strings.Index(rest, end)], "\n")
	return rest[:i+1]
}

func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// tokenProbes are chat IDs whose tokens the examples must get right.
var tokenProbes = []string{"abc123", "email:jo@example.com", "visitor 7/ü", "a.b*c>d", "~_-", "日本", "%41"}

// TestOtherLanguageExamples runs the Python and Node publishers of
// docs/apps.md as far as they go without a NATS server: their chat token
// function on awkward chat IDs, and the subject and body they would
// publish (with a fixed id), which must validate against the schema and be
// accepted by the worker's decoder. It skips a language whose interpreter
// is not installed.
func TestOtherLanguageExamples(t *testing.T) {
	text := readDoc(t, "../docs/apps.md")
	probes, _ := json.Marshal(tokenProbes)
	tests := []struct {
		lang, interpreter string
		args              []string
		script            func(block string) string
	}{
		{"python", "python3", []string{"-c"}, func(block string) string {
			return "import json\n" + between(t, block, "# example:token:begin", "# example:token:end") +
				"\ncommand_id = \"py-example\"\n" + dedent(between(t, block, "# example:command:begin", "# example:command:end")) +
				"\nprint(json.dumps([chat_token(i) for i in json.loads(" + strconvQuote(string(probes)) + ")]))\nprint(subject)\nprint(body.decode(\"utf-8\"))\n" +
				"print(subject_of(\"commands\", None, command[\"type\"], chat_token(command[\"chat_id\"])))\n" +
				dedent(between(t, block, "# example:schedule:begin", "# example:schedule:end")) +
				"\nprint(schedule_subject)\nprint(json.dumps(schedule_headers))\nprint(json.dumps(recurring))\nprint(debounce_subject)\nprint(json.dumps(debounce_headers))\n"
		}},
		{"js", "node", []string{"--input-type=module", "-e"}, func(block string) string {
			return between(t, block, "// example:token:begin", "// example:token:end") +
				"\nconst commandId = \"node-example\";\n" + between(t, block, "// example:command:begin", "// example:command:end") +
				"\nconsole.log(JSON.stringify(" + string(probes) + ".map(chatToken)));\nconsole.log(subject);\nconsole.log(body);\n" +
				"console.log(subjectOf(\"commands\", null, command.type, chatToken(command.chat_id)));\n" +
				between(t, block, "// example:schedule:begin", "// example:schedule:end") +
				"\nconsole.log(scheduleSubject);\nconsole.log(JSON.stringify(scheduleHeaders));\nconsole.log(JSON.stringify(recurring));\nconsole.log(debounceSubject);\nconsole.log(JSON.stringify(debounceHeaders));\n"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			blocks := codeBlocks(text, tt.lang)
			if len(blocks) != 1 {
				t.Fatalf("%d %s blocks in docs/apps.md, want 1", len(blocks), tt.lang)
			}
			bin, err := exec.LookPath(tt.interpreter)
			if err != nil {
				t.Skipf("%s is not installed", tt.interpreter)
			}
			script := tt.script(blocks[0])
			out, err := exec.CommandContext(t.Context(), bin, append(tt.args, script)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s\nscript:\n%s", tt.interpreter, err, out, script)
			}
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			if len(lines) != 9 {
				t.Fatalf("output %q, want tokens, subject, body and the v1 subject, then the recurring schedule's subject, headers and body, and the debounced one's subject and headers", out)
			}
			var tokens []string
			if err := json.Unmarshal([]byte(lines[0]), &tokens); err != nil || len(tokens) != len(tokenProbes) {
				t.Fatalf("tokens %q: %v", lines[0], err)
			}
			for i, id := range tokenProbes {
				if want := contract.Token(id); tokens[i] != want {
					t.Errorf("the example's token of %q is %q, want %q", id, tokens[i], want)
				}
			}
			subject, body := lines[1], []byte(lines[2])
			schematest.Command(t).Valid(t, body)
			cmd, err := contract.Decode(contract.Subjects{}, subject, body)
			if err != nil {
				t.Fatalf("the worker refuses what the example publishes on %s: %v\n%s", subject, err, body)
			}
			// The examples speak contract v2, and build v1 subjects without
			// a project.
			if cmd.Project == "" {
				t.Errorf("the example publishes on %s, a v1 subject: want its project's (v2)", subject)
			}
			if want := (contract.Subjects{}).Command(cmd.Type, cmd.ChatID); lines[3] != want {
				t.Errorf("the example's v1 subject is %s, want %s", lines[3], want)
			}
			checkScheduleExamples(t, subject, body, lines[4:])
		})
	}
}

// checkScheduleExamples holds the recurring and debounced schedules an
// example builds for the command it publishes on subject to what
// actions.ScheduleRecurring and actions.ScheduleDebounced store.
func checkScheduleExamples(t *testing.T, subject string, body []byte, lines []string) {
	t.Helper()
	cmd, err := contract.Decode(contract.Subjects{}, subject, body)
	if err != nil {
		t.Fatal(err)
	}
	// The schedules are the command's project's (v1 ones without).
	s := contract.Subjects{}.For(cmd.Project)
	var sh, dh map[string]string
	if json.Unmarshal([]byte(lines[1]), &sh) != nil || json.Unmarshal([]byte(lines[4]), &dh) != nil {
		t.Fatalf("headers %s and %s are not JSON objects of strings", lines[1], lines[4])
	}
	recurring, err := contract.DecodeBody([]byte(lines[2]))
	if err != nil {
		t.Fatalf("the recurring schedule's body: %v", err)
	}
	schematest.Command(t).Valid(t, []byte(lines[2]))
	if want := s.Schedule(recurring.Type, recurring.ChatID, recurring.ID); lines[0] != want {
		t.Errorf("recurring schedule subject %s, want %s", lines[0], want)
	}
	r, err := contract.ParseRecurrence(sh["Nats-Schedule"], sh["Nats-Schedule-Time-Zone"])
	if err != nil || sh[contract.HeaderRecurrence] != r.Pattern() || sh[contract.HeaderRecurrenceTZ] != r.TZ ||
		sh["Nats-Schedule-Target"] != s.Command(recurring.Type, recurring.ChatID) || sh["Nats-TTL"] != "never" {
		t.Errorf("recurring schedule headers %v: %v", sh, err)
	}
	if want := s.Debounce(cmd.Type, cmd.ChatID, "cart-reminder"); lines[3] != want {
		t.Errorf("debounce subject %s, want %s", lines[3], want)
	}
	at, ok := strings.CutPrefix(dh["Nats-Schedule"], "@at ")
	if _, err := time.Parse(time.RFC3339, at); !ok || err != nil || strings.Contains(at, ".") || dh["Nats-Schedule-Target"] != subject || dh["Nats-TTL"] != "never" {
		t.Errorf("debounce headers %v: want @at and a time in whole seconds, the command's subject as target, Nats-TTL never", dh)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
