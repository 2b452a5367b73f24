package execute

import "github.com/chatworker/worker/chat"

// Budgets reports what the client knows of each configured project's rate
// budget, by the project's name, for the replica's fleet record.
func (e *Executor) Budgets() map[string]chat.Budget {
	out := map[string]chat.Budget{}
	for _, name := range e.Names() {
		out[name] = e.Client.Budget(e.callCredentials(name)...)
	}
	return out
}

func (e *Executor) callCredentials(name string) []chat.CallOption {
	if c, ok := e.credentials(name); ok && c != nil {
		return []chat.CallOption{chat.WithCallCredentials(*c)}
	}
	return nil
}
