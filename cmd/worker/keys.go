package main

import (
	"sync"

	"github.com/chatworker/worker/chat"
)

// projectKeys are the projects' credentials as the worker uses them: read at
// start and again before a paused project is checked, so a rotated secret
// file (GOSQUARED_API_KEY_FILE, GOSQUARED_PROJECTS_FILE) takes effect
// without a restart. The default project's site token stays what it was at
// start: it names the project in metrics and readiness.
type projectKeys struct {
	mu       sync.RWMutex
	def      chat.Credentials
	projects map[string]chat.Credentials
}

func newKeys(def chat.Credentials, projects map[string]chat.Credentials) *projectKeys {
	return &projectKeys{def: def, projects: projects}
}

// Lookup implements actions.Keys.
func (k *projectKeys) Lookup(site string) (chat.Credentials, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if site == "" || site == k.def.SiteToken {
		return k.def, true
	}
	c, ok := k.projects[site]
	return c, ok
}

// Reload implements actions.Keys. A file that cannot be read or parsed
// leaves the credentials as they were: the error says which variable, never
// a value.
func (k *projectKeys) Reload() error {
	def, err := apiCredentials()
	if err != nil {
		return err
	}
	k.mu.RLock()
	def.SiteToken = k.def.SiteToken
	k.mu.RUnlock()
	projects, err := apiProjects(def)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.def, k.projects = def, projects
	k.mu.Unlock()
	return nil
}
