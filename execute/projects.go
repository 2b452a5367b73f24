package execute

import (
	"context"
	"errors"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

// Keys supplies the projects' credentials while the worker runs, so a
// rotated secret file takes effect without a restart.
type Keys interface {
	// Lookup returns the credentials of a project (a site token); "" is the
	// default project.
	Lookup(site string) (chat.Credentials, bool)
	// Reload reads the credentials again. The worker calls it before it
	// checks a paused project.
	Reload() error
}

// Project names the project a command runs in: its site_token, or the
// default project. ok is false for a project this worker is not configured
// for (the command is refused when executed), so a project name returned
// here is one of the allow-list's and safe as a metric label.
func (e *Executor) Project(cmd contract.Command) (string, bool) {
	if cmd.SiteToken == "" || cmd.SiteToken == e.SiteToken {
		return e.SiteToken, true
	}
	_, ok := e.credentials(cmd.SiteToken)
	return cmd.SiteToken, ok
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

// credentials returns the credentials of a project, nil for the client's
// defaults; ok is false for a project without credentials.
func (e *Executor) credentials(site string) (*chat.Credentials, bool) {
	if e.Keys != nil {
		if site == e.SiteToken {
			site = ""
		}
		c, ok := e.Keys.Lookup(site)
		return &c, ok
	}
	if site == "" || site == e.SiteToken {
		return nil, true
	}
	c, ok := e.Projects[site]
	return &c, ok
}

// ConfigFault reports whether err blames the worker's configuration rather
// than the command (chat.ErrConfig: the API refused the credentials, or what
// answered is not the Chat API at all, such as a wrong base URL). Such a
// failure pauses the command's project instead of dead-lettering the
// command.
func ConfigFault(err error) bool { return errors.Is(err, chat.ErrConfig) }
