package execute

import (
	"testing"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
)

func TestResolveProject(t *testing.T) {
	e := &Executor{SiteToken: "GSN-D", Default: "main", Projects: map[string]chat.Credentials{"shop": {APIKey: "k", SiteToken: "GSN-S"}}}
	for _, tc := range []struct {
		name    string
		cmd     contract.Command
		project string
		class   contract.Class // "" when resolved
	}{
		{"v1 without site_token: the default", contract.Command{}, "main", ""},
		{"v1 with the default's token", contract.Command{SiteToken: "GSN-D"}, "main", ""},
		{"v1 with a configured token: its name", contract.Command{SiteToken: "GSN-S"}, "shop", ""},
		{"v1 with an unknown token", contract.Command{SiteToken: "GSN-X"}, "", contract.ClassPermanent},
		{"v2 by name", contract.Command{Project: "shop"}, "shop", ""},
		{"v2 naming the default", contract.Command{Project: "main"}, "main", ""},
		{"v2 with its own token", contract.Command{Project: "shop", SiteToken: "GSN-S"}, "shop", ""},
		{"v2 with another project's token", contract.Command{Project: "shop", SiteToken: "GSN-D"}, "", contract.ClassInvalid},
		{"v2 default with another's token", contract.Command{Project: "main", SiteToken: "GSN-S"}, "", contract.ClassInvalid},
		{"v2 naming an unknown project", contract.Command{Project: "blog"}, "", contract.ClassPermanent},
		{"v2 named default when the default is named otherwise", contract.Command{Project: "default"}, "", contract.ClassPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.resolve(tc.cmd)
			if got != tc.project || contract.ClassOf(err) != tc.class && (err != nil || tc.class != "") {
				t.Errorf("resolve = %q, %v; want %q, class %q", got, err, tc.project, tc.class)
			}
			if name, ok := e.Project(tc.cmd); ok != (tc.class == "") || name != tc.project {
				t.Errorf("Project = %q, %v", name, ok)
			}
		})
	}
}
