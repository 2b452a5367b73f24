package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chatworker/worker/chat"
)

func TestParseProjects(t *testing.T) {
	def := chat.Credentials{APIKey: "sk-DEFAULT", SiteToken: "GSN-DEF-1"}
	for _, tc := range []struct {
		name, in string
		want     map[string]string // name to site token
		err      string            // part of the error; "" for none
	}{
		{"named", "shop:GSN-1-A=sk-1, blog:GSN-2-B=sk-2", map[string]string{"shop": "GSN-1-A", "blog": "GSN-2-B"}, ""},
		{"old form: the site token lowercased", "GSN-106863-S=sk-1", map[string]string{"gsn-106863-s": "GSN-106863-S"}, ""},
		{"old form: bytes a name cannot hold, a leading digit", "123_x.Y=sk-1", map[string]string{"p-123-x-y": "123_x.Y"}, ""},
		{"both forms, comments and blank lines", "# projects\nshop:GSN-1-A=sk-1\n\nGSN-2-B=sk-2\n", map[string]string{"shop": "GSN-1-A", "gsn-2-b": "GSN-2-B"}, ""},
		{"a derived name colliding with a chosen one", "gsn-1-a:GSN-9=sk-1,GSN-1-A=sk-2", nil, "entry 2 is named \"gsn-1-a\" like entry 1"},
		{"two tokens making one name", "GSN-1-A=sk-1,gsn.1.a=sk-2", nil, "entry 2 is named \"gsn-1-a\" like entry 1"},
		{"a repeated site token", "a:GSN-1=sk-1,b:GSN-1=sk-2", nil, "entry 2 repeats the site token of entry 1"},
		{"an invalid name", "Shop:GSN-1=sk-1", nil, "entry 1: project name"},
		{"a reserved name", "send:GSN-1=sk-1", nil, "entry 1: \"send\" cannot name a project"},
		{"the default project's name", "default:GSN-1=sk-1", nil, "entry 1 is named \"default\", the default project's name"},
		{"the default project's token", "x:GSN-DEF-1=sk-1", nil, "entry 1 names the default project"},
		{"no key", "shop:GSN-1=", nil, "entry 1: want NAME:SITE_TOKEN=API_KEY"},
		{"no name before the colon", ":GSN-1=sk-1", nil, "entry 1: want NAME:SITE_TOKEN=API_KEY"},
		{"a token too long for a name", strings.Repeat("G", 40) + "=sk-1", nil, "entry 1: its site token makes no project name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProjects([]byte(tc.in), def, "default")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want it to say %q", err, tc.err)
				}
				for _, secret := range []string{"sk-1", "sk-2", "GSN-1", "GSN-DEF-1"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q shows %q", err, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sites := map[string]string{}
			for name, c := range got {
				sites[name] = c.SiteToken
			}
			if !maps.Equal(sites, tc.want) {
				t.Errorf("projects %v, want %v", sites, tc.want)
			}
		})
	}
}

func TestKeysResolveNamesAndTokens(t *testing.T) {
	def := chat.Credentials{APIKey: "sk-D", SiteToken: "GSN-D"}
	k := newKeys(def, "main", map[string]chat.Credentials{"shop": {APIKey: "sk-S", SiteToken: "GSN-S"}})
	if got := k.Names(); !slices.Equal(got, []string{"main", "shop"}) {
		t.Errorf("names %v", got)
	}
	for site, want := range map[string]string{"": "main", "GSN-D": "main", "GSN-S": "shop", "GSN-X": ""} {
		if got, _ := k.Named(site); got != want {
			t.Errorf("Named(%q) = %q, want %q", site, got, want)
		}
	}
	if c, ok := k.Lookup("shop"); !ok || c.APIKey != "sk-S" {
		t.Errorf("Lookup(shop) = %v %v", c.SiteToken, ok)
	}
	if c, ok := k.Lookup("main"); !ok || c.APIKey != "sk-D" {
		t.Errorf("Lookup(main) = %v %v", c.SiteToken, ok)
	}
}

// The projects file is read again once it changed: a project added to it
// or removed from it is in the next Names, without a restart; a file that
// cannot be parsed leaves the projects as they were.
func TestKeysFollowTheProjectsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "projects")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("shop:GSN-S=sk-S\n")
	t.Setenv("GOSQUARED_API_KEY", "sk-D")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-D")
	t.Setenv("GOSQUARED_PROJECTS_FILE", file)
	def, err := apiCredentials()
	if err != nil {
		t.Fatal(err)
	}
	projects, err := apiProjects(def, "default")
	if err != nil {
		t.Fatal(err)
	}
	k := newKeys(def, "default", projects)
	var errs []error
	k.onError = func(err error) { errs = append(errs, err) }
	for _, step := range []struct {
		file string
		want []string
		errs int
	}{
		{"", []string{"default", "shop"}, 0},
		{"shop:GSN-S=sk-S\nblog:GSN-B=sk-B\n", []string{"default", "blog", "shop"}, 0},
		{"blog:GSN-B=sk-B\n", []string{"default", "blog"}, 0},
		{"blog:GSN-B=sk-B\nBAD NAME:GSN-X=sk-X\n", []string{"default", "blog"}, 1},
	} {
		if step.file != "" {
			write(step.file)
		}
		if got := k.Names(); !slices.Equal(got, step.want) {
			t.Errorf("after %q: names %v, want %v", step.file, got, step.want)
		}
		if len(errs) != step.errs {
			t.Errorf("after %q: errors %v", step.file, errs)
		}
	}
	if name, ok := k.Named("GSN-B"); !ok || name != "blog" {
		t.Errorf("Named(GSN-B) = %q, %v", name, ok)
	}
}
