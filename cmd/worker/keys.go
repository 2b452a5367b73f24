package main

import (
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/chatworker/worker/chat"
)

// projectKeys are the projects' credentials as the worker uses them, by
// project name: read at start, again before a paused project is checked,
// so a rotated secret file (GOSQUARED_API_KEY_FILE, GOSQUARED_PROJECTS_FILE)
// takes effect without a restart, and again when the projects file changes
// (see Names), so projects can be added and removed while the worker runs.
// The default project's site token and name stay what they were at start.
type projectKeys struct {
	mu       sync.RWMutex
	defName  string
	def      chat.Credentials
	projects map[string]chat.Credentials // by name, the default's excluded
	bySite   map[string]string           // site token to name

	// file is GOSQUARED_PROJECTS_FILE; seen is its size and modification
	// time when last read, so Names reads it again only once it changed.
	file    string
	watch   sync.Mutex // guards seen
	seen    fileStamp
	onError func(error) // told once per change of the file that cannot be read
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(file string) fileStamp {
	if fi, err := os.Stat(file); err == nil {
		return fileStamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return fileStamp{}
}

func newKeys(def chat.Credentials, defName string, projects map[string]chat.Credentials) *projectKeys {
	k := &projectKeys{defName: defName, def: def, file: os.Getenv("GOSQUARED_PROJECTS_FILE"), onError: func(error) {}}
	k.seen = stampOf(k.file)
	k.set(def, projects)
	return k
}

func (k *projectKeys) set(def chat.Credentials, projects map[string]chat.Credentials) {
	bySite := make(map[string]string, len(projects))
	for name, c := range projects {
		bySite[c.SiteToken] = name
	}
	k.mu.Lock()
	k.def, k.projects, k.bySite = def, projects, bySite
	k.mu.Unlock()
}

// Lookup implements execute.Keys.
func (k *projectKeys) Lookup(name string) (chat.Credentials, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if name == k.defName {
		return k.def, true
	}
	c, ok := k.projects[name]
	return c, ok
}

// Named implements execute.Keys.
func (k *projectKeys) Named(site string) (string, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if site == "" || site == k.def.SiteToken {
		return k.defName, true
	}
	name, ok := k.bySite[site]
	return name, ok
}

// Names implements execute.Keys: the default project first, then the
// others by name. When the projects file changed since it was last read,
// it is read again first (the worker asks every second or so).
func (k *projectKeys) Names() []string {
	if k.file != "" {
		k.watch.Lock()
		if st := stampOf(k.file); st != k.seen {
			k.seen = st
			if err := k.Reload(); err != nil {
				k.onError(err)
			}
		}
		k.watch.Unlock()
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]string{k.defName}, slices.Sorted(maps.Keys(k.projects))...)
}

// Reload implements execute.Keys. A file that cannot be read or parsed
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
	projects, err := apiProjects(def, k.defName)
	if err != nil {
		return err
	}
	k.set(def, projects)
	return nil
}
