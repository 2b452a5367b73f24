package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

// apiProjects reads the projects besides the default one (def, named
// defName): GOSQUARED_PROJECTS, or the file named by
// GOSQUARED_PROJECTS_FILE, holding entries "NAME:SITE_TOKEN=API_KEY" or
// "SITE_TOKEN=API_KEY" (commas or newlines between entries; blank lines and
// lines starting with # are skipped), by name. A v2 command names its
// project in its subject, a v1 command by its site_token; a command naming
// any other project is a permanent dead letter. Errors name entries by
// position, never by their tokens or keys.
func apiProjects(def chat.Credentials, defName string) (map[string]chat.Credentials, error) {
	data, err := projectsData()
	if err != nil {
		return nil, err
	}
	defer clear(data) // the keys live on only in the map the executor needs
	return parseProjects(data, def, defName)
}

// projectsData is the text of GOSQUARED_PROJECTS or of its file.
func projectsData() ([]byte, error) {
	v, file := os.Getenv("GOSQUARED_PROJECTS"), os.Getenv("GOSQUARED_PROJECTS_FILE")
	switch {
	case v != "" && file != "":
		return nil, fmt.Errorf("both GOSQUARED_PROJECTS and GOSQUARED_PROJECTS_FILE are set: set only one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS_FILE: %w", err)
		}
		return b, nil
	}
	return []byte(v), nil
}

func parseProjects(data []byte, def chat.Credentials, defName string) (map[string]chat.Credentials, error) {
	projects := map[string]chat.Credentials{}
	entryOf := map[string]int{} // names and site tokens to their entry's position
	entries := bytes.FieldsFunc(data, func(r rune) bool { return r == ',' || r == '\n' })
	for i, e := range entries {
		e = bytes.TrimSpace(e)
		if len(e) == 0 || e[0] == '#' {
			continue
		}
		n := i + 1
		left, key, ok := bytes.Cut(e, []byte("="))
		key = bytes.TrimSpace(key)
		name, site, named := strings.Cut(string(bytes.TrimSpace(left)), ":")
		if !named {
			name, site = "", name
		}
		name, site = strings.TrimSpace(name), strings.TrimSpace(site)
		if !ok || site == "" || len(key) == 0 || (named && name == "") {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d: want NAME:SITE_TOKEN=API_KEY (or SITE_TOKEN=API_KEY)", n)
		}
		if !named {
			var err error
			if name, err = nameOf(site); err != nil {
				return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d: its site token makes no project name (more than %d bytes, or a reserved word): write NAME:SITE_TOKEN=API_KEY", n, contract.MaxProjectNameBytes)
			}
		} else if err := contract.CheckProjectName(name); err != nil {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d: %v", n, err)
		}
		switch {
		case site == def.SiteToken:
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d names the default project (GOSQUARED_SITE_TOKEN), whose key is GOSQUARED_API_KEY: remove it", n)
		case name == defName:
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d is named %q, the default project's name (--default-project): choose another name", n, name)
		}
		if prev, dup := entryOf["site "+site]; dup {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d repeats the site token of entry %d", n, prev)
		}
		if prev, dup := entryOf["name "+name]; dup {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d is named %q like entry %d: give one of them another name (NAME:SITE_TOKEN=API_KEY)", n, name, prev)
		}
		entryOf["site "+site], entryOf["name "+name] = n, n
		projects[name] = chat.Credentials{APIKey: string(key), SiteToken: site}
	}
	return projects, nil
}

// nameOf is the name of a project configured by its site token alone (the
// entries' first form): the token in lowercase, any byte a name cannot
// hold written as -, with "p-" in front when it does not start with a
// letter. GSN-106863-S is gsn-106863-s.
func nameOf(site string) (string, error) {
	b := []byte(strings.ToLower(site))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '-'
		}
	}
	name := string(b)
	if len(name) > 0 && (name[0] < 'a' || name[0] > 'z') {
		name = "p-" + name
	}
	return name, contract.CheckProjectName(name)
}
