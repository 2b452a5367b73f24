// Package docs_test checks what the pages in docs/ and the README tell a
// reader to type or copy against the code they describe.
package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chatworker/worker/chat/chatsim"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// blocks returns the fenced code blocks of a language in a page.
func blocks(text, lang string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

func pages(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	names = append(names, "../README.md")
	out := map[string]string{}
	for _, n := range names {
		out[n] = read(t, n)
	}
	return out
}

// TestPublishesWaitForJetStream: a plain NATS publish hears nothing of a
// command JetStream refuses (too large, no stream), so every `nats pub` of
// a command or schedule subject in the pages uses --jetstream, and the
// Python and Node publishers use the client's JetStream publish and read
// its acknowledgement.
func TestPublishesWaitForJetStream(t *testing.T) {
	pub := regexp.MustCompile(`nats pub\b[^\n]*`)
	found := 0
	for name, text := range pages(t) {
		for _, line := range pub.FindAllString(text, -1) {
			if !strings.Contains(line, "chat.commands.") && !strings.Contains(line, "chat.schedules.") {
				continue
			}
			found++
			if !strings.Contains(line, "--jetstream") {
				t.Errorf("%s: %q publishes a command without --jetstream", name, line)
			}
		}
	}
	if found == 0 {
		t.Fatal("no `nats pub` of a command in the pages: the check reads nothing")
	}
	apps := read(t, "apps.md")
	for _, c := range []struct {
		lang string
		want []string
	}{
		{"python", []string{"js = nc.jetstream()", "ack = await js.publish(", "ack.duplicate"}},
		{"js", []string{"const js = jetstream(nc)", "const ack = await js.publish(", "ack.duplicate"}},
	} {
		bs := blocks(apps, c.lang)
		if len(bs) == 0 {
			t.Errorf("apps.md has no %s publisher", c.lang)
		}
		for _, b := range bs {
			for _, w := range c.want {
				if !strings.Contains(b, w) {
					t.Errorf("the %s publisher lacks %q", c.lang, w)
				}
			}
			if strings.Contains(b, "nc.publish(") {
				t.Errorf("the %s publisher publishes without JetStream", c.lang)
			}
		}
	}
}

// TestGoModuleNamed: the README and apps.md name the module in a `go get`
// line, and the README's program compiles against this module.
func TestGoModuleNamed(t *testing.T) {
	m := regexp.MustCompile(`(?m)^module (\S+)$`).FindStringSubmatch(read(t, "../go.mod"))
	if m == nil {
		t.Fatal("no module line in go.mod")
	}
	module := m[1]
	readme, apps := read(t, "../README.md"), read(t, "apps.md")
	for name, text := range map[string]string{"README.md": readme, "apps.md": apps} {
		if !strings.Contains(text, "go get "+module) {
			t.Errorf("%s has no `go get %s`", name, module)
		}
		if !slices.ContainsFunc(blocks(text, "go"), func(b string) bool { return strings.Contains(b, `"`+module+`/actions"`) }) {
			t.Errorf("%s imports no %s/actions in a Go snippet", name, module)
		}
	}
	var program string
	for _, b := range blocks(readme, "go") {
		if strings.HasPrefix(b, "package main\n") {
			program = b
		}
	}
	if program == "" {
		t.Fatal("README.md has no Go program (a block starting with package main)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o600); err != nil {
		t.Fatal(err)
	}
	// Run from inside the module, so the import resolves to this code.
	if out, err := exec.CommandContext(t.Context(), "go", "vet", filepath.Join(dir, "main.go")).CombinedOutput(); err != nil {
		t.Fatalf("the README's program does not build: %v\n%s", err, out)
	}
}

// readExport is export.md's Go snippet, as the page shows it between the
// markers.
func readExport(ctx context.Context, js jetstream.JetStream, chatID string) (out [][]byte, err error) {
	err = func() error {
		// snippet:begin
		obs, err := js.ObjectStore(ctx, "CHAT_EXPORTS")
		if err != nil {
			return err
		}
		infos, err := obs.List(ctx) // jetstream.ErrNoObjectsFound when the bucket is empty
		if err != nil {
			return err
		}
		slices.SortFunc(infos, func(a, b *jetstream.ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
		var lines [][]byte // chatID's exports, oldest first
		for _, info := range infos {
			if !strings.HasPrefix(info.Name, "chats/"+contract.Token(chatID)+"/") {
				continue
			}
			line, err := obs.GetBytes(ctx, info.Name)
			if err != nil {
				return err
			}
			lines = append(lines, line)
		}
		// snippet:end
		out = lines
		return nil
	}()
	return out, err
}

// normalize drops indentation and blank lines, for comparing code.
func normalize(s string) string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestExportPage: export.md's Go snippet is readExport's, which reads a
// conversation's exports back in order; its command lines bound a run
// with relative times only (a fixed date in an example goes stale).
func TestExportPage(t *testing.T) {
	page := read(t, "export.md")
	src := read(t, "pages_test.go")
	begin, end := strings.Index(src, "// snippet:begin"), strings.Index(src, "// snippet:end")
	snippet := normalize(src[begin+len("// snippet:begin") : end])
	if !slices.ContainsFunc(blocks(page, "go"), func(b string) bool { return normalize(b) == snippet }) {
		t.Errorf("export.md's Go snippet is not readExport's:\n%s", snippet)
	}

	_, js := natstest.Connect(t, natstest.RunServer(t))
	ctx := t.Context()
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "CHAT_EXPORTS"})
	if err != nil {
		t.Fatal(err)
	}
	chat := "email:jo@example.com"
	for _, o := range []struct{ name, data string }{
		{"chats/" + contract.Token(chat) + "/1767312000000-abc.jsonl", "second"},
		{"chats/other/0000000000000.jsonl", "someone else"},
		{"chats/" + contract.Token(chat) + "/0000000000000.jsonl", "first"},
	} {
		if _, err := obs.PutBytes(ctx, o.name, []byte(o.data)); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := readExport(ctx, js, chat)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(lines, []byte(",")); string(got) != "first,second" {
		t.Errorf("read %q, want first,second", got)
	}
	if !strings.Contains(page, "nats object get CHAT_EXPORTS chats/"+contract.Token(chat)+"/0000000000000.jsonl") {
		t.Error("export.md does not show fetching an object with the nats CLI")
	}

	relative := regexp.MustCompile(`^\d+(ms|s|m|h|d)$`)
	for _, m := range regexp.MustCompile(`--(since|until)[ =](\S+)`).FindAllStringSubmatch(strings.Join(blocks(page, "sh"), "\n"), -1) {
		if !relative.MatchString(m[2]) {
			t.Errorf("export.md's example --%s %s is a fixed time: it goes stale", m[1], m[2])
		}
	}
}

// TestSimFaultsBody: the /_sim/faults body chat-api.md shows is what the
// simulator accepts.
func TestSimFaultsBody(t *testing.T) {
	page := read(t, "chat-api.md")
	i := strings.Index(page, "The body of `POST /_sim/faults`")
	if i < 0 {
		t.Fatal("chat-api.md does not describe the /_sim/faults body")
	}
	bodies := blocks(page[i:], "json")[:1]
	for _, m := range regexp.MustCompile(`_sim/faults -d '([^']*)'`).FindAllStringSubmatch(page, -1) {
		bodies = append(bodies, m[1])
	}
	if len(bodies) < 3 {
		t.Fatalf("found %d faults bodies, want the JSON example and two curl lines", len(bodies))
	}
	srv := httptest.NewServer(chatsim.New(chatsim.Config{}))
	t.Cleanup(srv.Close)
	for _, b := range bodies {
		var f chatsim.Faults
		if err := json.Unmarshal([]byte(b), &f); err != nil {
			t.Errorf("%s does not decode into chatsim.Faults: %v", b, err)
		}
		resp, err := http.Post(srv.URL+"/_sim/faults", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST /_sim/faults %s: %s", b, resp.Status)
		}
	}
}
