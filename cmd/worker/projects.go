package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/chatworker/worker/chat"
)

// apiProjects reads the projects, besides the default one (def), that a
// command may name in site_token: GOSQUARED_PROJECTS, or the file named by
// GOSQUARED_PROJECTS_FILE, holding "SITE_TOKEN=API_KEY,SITE_TOKEN2=API_KEY2"
// (commas or newlines between entries; blank lines and lines starting with
// # are skipped). A command naming any other project is a permanent dead
// letter. Errors name entries by position, never by their values.
func apiProjects(def chat.Credentials) (map[string]chat.Credentials, error) {
	v, file := os.Getenv("GOSQUARED_PROJECTS"), os.Getenv("GOSQUARED_PROJECTS_FILE")
	var data []byte
	switch {
	case v != "" && file != "":
		return nil, fmt.Errorf("both GOSQUARED_PROJECTS and GOSQUARED_PROJECTS_FILE are set: set only one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS_FILE: %w", err)
		}
		// The keys live on only in the map the executor needs.
		defer clear(b)
		data = b
	default:
		data = []byte(v)
	}
	return parseProjects(data, def)
}

func parseProjects(data []byte, def chat.Credentials) (map[string]chat.Credentials, error) {
	projects := map[string]chat.Credentials{}
	entries := bytes.FieldsFunc(data, func(r rune) bool { return r == ',' || r == '\n' })
	for i, e := range entries {
		e = bytes.TrimSpace(e)
		if len(e) == 0 || e[0] == '#' {
			continue
		}
		site, key, ok := bytes.Cut(e, []byte("="))
		site, key = bytes.TrimSpace(site), bytes.TrimSpace(key)
		switch {
		case !ok || len(site) == 0 || len(key) == 0:
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d: want SITE_TOKEN=API_KEY", i+1)
		case string(site) == def.SiteToken:
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d names the default project (GOSQUARED_SITE_TOKEN), whose key is GOSQUARED_API_KEY: remove it", i+1)
		}
		if _, dup := projects[string(site)]; dup {
			return nil, fmt.Errorf("GOSQUARED_PROJECTS entry %d repeats an earlier project", i+1)
		}
		projects[string(site)] = chat.Credentials{APIKey: string(key), SiteToken: string(site)}
	}
	return projects, nil
}
