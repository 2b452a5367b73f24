package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// everyCommand is every command that takes flags, as typed.
var everyCommand = [][]string{
	{"run"}, {"demo"}, {"sim"}, {"send"}, {"note"}, {"archive"}, {"status"}, {"schedules", "ls"}, {"schedules", "run"}, {"cancel"},
	{"provision"}, {"projects", "ls"}, {"projects", "pause"}, {"projects", "resume"}, {"projects", "set"}, {"console"}, {"dlq", "ls"}, {"dlq", "show"}, {"dlq", "replay"}, {"dlq", "purge"}, {"export"}, {"bench"},
}

var (
	helpEnv = regexp.MustCompile(`\[\$([A-Z0-9_]+)\]`)
	// The variables read in code rather than through a flag: credentials
	// (secret also reads NAME_FILE), projects, tracing.
	envRead = regexp.MustCompile(`(secret|Getenv|LookupEnv|getenv)\("([A-Z][A-Z0-9_]+)"\)`)
)

// TestConfigurationDocumentsEverything: docs/configuration.md names every
// flag of every command and every environment variable the binary reads,
// so that one page answers "what can I set".
func TestConfigurationDocumentsEverything(t *testing.T) {
	for _, c := range commands() {
		if c != "version" && c != "help" && !slices.ContainsFunc(everyCommand, func(e []string) bool { return e[0] == c }) {
			t.Errorf("command %s is missing from everyCommand", c)
		}
	}
	flags, vars := map[string][]string{}, map[string]bool{}
	for _, c := range everyCommand {
		_, help, code := userSees(t, append(c, "-h")...)
		if code != 0 {
			t.Fatalf("%v -h: exit %d", c, code)
		}
		for _, f := range helpFlags(help) {
			flags[f] = append(flags[f], strings.Join(c, " "))
		}
		for _, m := range helpEnv.FindAllStringSubmatch(help, -1) {
			vars[m[1]] = true
		}
	}
	for _, dir := range []string{".", "../../internal/telemetry", "../../internal/tracecontext"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range envRead.FindAllStringSubmatch(string(src), -1) {
				vars[m[2]] = true
				if m[1] == "secret" {
					vars[m[2]+"_FILE"] = true
				}
			}
		}
	}
	page, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(page)
	var missing []string
	for f, cmds := range flags {
		if !regexp.MustCompile(`--` + regexp.QuoteMeta(f) + `([^a-z0-9-]|$)`).MatchString(doc) {
			missing = append(missing, "--"+f+" ("+strings.Join(cmds, ", ")+")")
		}
	}
	for v := range vars {
		if !regexp.MustCompile(`(^|[^A-Z0-9_])` + v + `([^A-Z0-9_]|$)`).MatchString(doc) {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md does not name %d of %d flags and variables:\n  %s", len(missing), len(flags)+len(vars), strings.Join(missing, "\n  "))
	}
}
