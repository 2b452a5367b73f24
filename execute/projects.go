package execute

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

// Keys supplies the projects' credentials while the worker runs, so a
// rotated secret file takes effect without a restart. Projects are named
// by the operator (contract v2); the name is what the worker shows in
// metrics, logs and project states, never the key.
type Keys interface {
	// Lookup returns the credentials of the project named name.
	Lookup(name string) (chat.Credentials, bool)
	// Named returns the name of the project whose site token is site; ""
	// is the default project.
	Named(site string) (string, bool)
	// Names lists the configured projects, the default one included.
	Names() []string
	// Reload reads the credentials again. The worker calls it before it
	// checks a paused project.
	Reload() error
}

// resolve names the project cmd runs in. A v2 command's is its subject's
// (its site_token, if any, must be that project's); a v1 command's is the
// project whose site token the body names, or the default project.
func (e *Executor) resolve(cmd contract.Command) (string, error) {
	if cmd.Project != "" {
		creds, ok := e.credentials(cmd.Project)
		if !ok {
			return "", contract.Permanentf("the subject names the project %q, which this worker is not configured for; add it to the worker's project list (GOSQUARED_PROJECTS) as %s:SITE_TOKEN=API_KEY", cmd.Project, cmd.Project)
		}
		if cmd.SiteToken != "" && cmd.SiteToken != e.siteOf(creds) {
			return "", contract.Invalidf("the command's site_token is not the site token of the project %q its subject names: leave site_token out of v2 commands", cmd.Project)
		}
		return cmd.Project, nil
	}
	if name, ok := e.named(cmd.SiteToken); ok {
		return name, nil
	}
	return "", contract.Permanentf("the command's site_token names a project this worker is not configured for; add it to the worker's project list (GOSQUARED_PROJECTS) with its API key, or leave site_token out")
}

// Project names the project a command runs in (see resolve). ok is false
// for a command no configured project runs (it is refused when executed),
// so a name returned here is a configured one and safe as a metric label.
func (e *Executor) Project(cmd contract.Command) (string, bool) {
	name, err := e.resolve(cmd)
	return name, err == nil
}

// DefaultName is the default project's name.
func (e *Executor) DefaultName() string {
	if e.Default != "" {
		return e.Default
	}
	return contract.DefaultProject
}

// Names lists the configured projects' names, the default one first.
func (e *Executor) Names() []string {
	if e.Keys != nil {
		return e.Keys.Names()
	}
	names := []string{e.DefaultName()}
	for _, n := range slices.Sorted(maps.Keys(e.Projects)) {
		if n != e.DefaultName() {
			names = append(names, n)
		}
	}
	return names
}

// Reserve books the next API call in the project's rate budget without
// waiting (see chat.Reservation).
func (e *Executor) Reserve(project string) *chat.Reservation {
	if creds, ok := e.credentials(project); ok && creds != nil {
		return e.Client.Reserve(chat.WithCallCredentials(*creds))
	}
	return e.Client.Reserve()
}

// Check reads the project's credentials again and makes one cheap read with
// them. An error for which ConfigFault holds means they are still wrong.
func (e *Executor) Check(ctx context.Context, project string) error {
	var opts []chat.CallOption
	if e.Keys != nil {
		if err := e.Keys.Reload(); err != nil {
			return &contract.Error{Class: contract.ClassInternal, Msg: "reading the credentials again", Err: err}
		}
	}
	creds, ok := e.credentials(project)
	if !ok {
		return contract.Permanentf("no credentials for this project")
	}
	if creds != nil {
		opts = append(opts, chat.WithCallCredentials(*creds))
	}
	return e.Client.Check(ctx, opts...)
}

// credentials returns the credentials of the project named name, nil for
// the client's defaults; ok is false for a project without credentials.
func (e *Executor) credentials(name string) (*chat.Credentials, bool) {
	if e.Keys != nil {
		c, ok := e.Keys.Lookup(name)
		return &c, ok
	}
	if name == e.DefaultName() {
		return nil, true
	}
	c, ok := e.Projects[name]
	return &c, ok
}

// named returns the name of the project whose site token is site ("" is
// the default project).
func (e *Executor) named(site string) (string, bool) {
	if e.Keys != nil {
		return e.Keys.Named(site)
	}
	if site == "" || site == e.SiteToken {
		return e.DefaultName(), true
	}
	for name, c := range e.Projects {
		if c.SiteToken == site {
			return name, true
		}
	}
	return "", false
}

// siteOf is the site token of a project whose credentials are creds (nil:
// the client's defaults, the default project's).
func (e *Executor) siteOf(creds *chat.Credentials) string {
	if creds == nil {
		return e.SiteToken
	}
	return creds.SiteToken
}

// ConfigFault reports whether err blames the worker's configuration rather
// than the command (chat.ErrConfig: the API refused the credentials, or what
// answered is not the Chat API at all, such as a wrong base URL). Such a
// failure pauses the command's project instead of dead-lettering the
// command.
func ConfigFault(err error) bool { return errors.Is(err, chat.ErrConfig) }
