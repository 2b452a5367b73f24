package doclinks

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pending are docs other changes add; a link to one of them is allowed
// while it does not exist yet.
var pending = []string{"docs/how-it-works.md", "docs/schedules.md"}

// selfContained are the docs for app developers: they link only to files in
// the repository, never to a web page, so a clone documents itself.
var selfContained = []string{"docs/contract.md", "docs/apps.md"}

var (
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	fence      = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// links are the link targets of a Markdown text, outside code.
func links(md string) []string {
	md = fence.ReplaceAllString(md, "")
	md = codeSpan.ReplaceAllString(md, "")
	var out []string
	for _, re := range []*regexp.Regexp{inlineLink, refLink} {
		for _, m := range re.FindAllStringSubmatch(md, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestLinksExtracted(t *testing.T) {
	md := "see [a](docs/a.md#x) and [b](../b.md \"t\")\n```\n[c](c.md)\n```\n`[d](d.md)` [e](https://x.org)\n[f]: f.md\n"
	got := links(md)
	want := []string{"docs/a.md#x", "../b.md", "https://x.org", "f.md"}
	if !slices.Equal(got, want) {
		t.Errorf("links = %q, want %q", got, want)
	}
}

// TestRelativeLinks: every relative link in every Markdown file of the
// repository names a file or directory in it, and none leaves it.
func TestRelativeLinks(t *testing.T) {
	root := repoRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".md") {
			return nil
		}
		files++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, link := range links(string(data)) {
			u, err := url.Parse(link)
			if err != nil {
				t.Errorf("%s: link %q: %v", rel, link, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				if slices.Contains(selfContained, filepath.ToSlash(rel)) {
					t.Errorf("%s: link %q leaves the repository; the docs for apps link only to files in it", rel, link)
				}
				continue // absolute URLs, mail
			}
			if u.Path == "" {
				continue // anchors in the same file
			}
			if strings.HasPrefix(u.Path, "/") {
				t.Errorf("%s: link %q: use a path relative to the file", rel, link)
				continue
			}
			target := filepath.Join(filepath.Dir(path), filepath.FromSlash(u.Path))
			inRepo, err := filepath.Rel(root, target)
			if err != nil || inRepo == ".." || strings.HasPrefix(inRepo, ".."+string(filepath.Separator)) {
				t.Errorf("%s: link %q points outside the repository", rel, link)
				continue
			}
			if _, err := os.Stat(target); err != nil {
				if slices.Contains(pending, filepath.ToSlash(inRepo)) {
					continue
				}
				t.Errorf("%s: link %q: %s does not exist", rel, link, filepath.ToSlash(inRepo))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range selfContained {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(doc))); err != nil {
			t.Errorf("%s is not in the repository: %v", doc, err)
		}
	}
	if files < 5 {
		t.Fatalf("checked %d Markdown files: is the walk starting at the repository?", files)
	}
}
