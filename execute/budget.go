package execute

import "github.com/chatworker/worker/chat"

// Budgets reports what the client knows of each project's rate budget, by
// the project's label ("default" for the default project, whose site token
// is a credential and never shown), for the replica's fleet record.
func (e *Executor) Budgets() map[string]chat.Budget {
	out := map[string]chat.Budget{"default": e.Client.Budget(e.callCredentials("")...)}
	for site := range e.Projects {
		if site != e.SiteToken {
			out[site] = e.Client.Budget(e.callCredentials(site)...)
		}
	}
	return out
}

func (e *Executor) callCredentials(site string) []chat.CallOption {
	if c, ok := e.credentials(site); ok && c != nil {
		return []chat.CallOption{chat.WithCallCredentials(*c)}
	}
	return nil
}
