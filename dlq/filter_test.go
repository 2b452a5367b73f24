package dlq

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
)

func TestParseFilter(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      Values
		want    Filter
		wantErr string
	}{
		{name: "empty", in: Values{}, want: Filter{}},
		{name: "lists", in: Values{Class: "exhausted, permanent,exhausted", Type: "send,note"},
			want: Filter{Classes: []contract.Class{"exhausted", "permanent"}, Types: []string{"send", "note"}}},
		{name: "relative", in: Values{Since: "2h", Until: "30m"}, want: Filter{Since: now.Add(-2 * time.Hour), Until: now.Add(-30 * time.Minute)}},
		{name: "days", in: Values{Since: "7d"}, want: Filter{Since: now.Add(-7 * 24 * time.Hour)}},
		{name: "date", in: Values{Since: "2026-05-01", Until: "2026-05-02T10:00:00+02:00"},
			want: Filter{Since: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)}},
		{name: "bad class", in: Values{Class: "retryable"}, wantErr: `--class "retryable": want one of invalid, permanent, exhausted, conflict`},
		{name: "every command type", in: Values{Type: "export,archive,invalid"}, want: Filter{Types: []string{"export", "archive", "invalid"}}},
		{name: "expired", in: Values{Class: "expired"}, want: Filter{Classes: []contract.Class{"expired"}}},
		{name: "bad type", in: Values{Type: "sned"}, wantErr: `--type "sned"`},
		{name: "bad since", in: Values{Since: "yesterday"}, wantErr: `--since "yesterday": want a time`},
		{name: "negative", in: Values{Until: "-5m"}, wantErr: "must be positive"},
		{name: "reversed", in: Values{Since: "1h", Until: "2h"}, wantErr: "is not before --until"},
		{name: "limit", in: Values{Limit: -1}, wantErr: "--limit -1"},
		{name: "project", in: Values{Project: "acme"}, want: Filter{Project: "acme"}},
		{name: "bad project", in: Values{Project: "Acme"}, wantErr: "--project: project name"},
		{name: "reserved project", in: Values{Project: "send"}, wantErr: "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilter(tt.in, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Classes, tt.want.Classes) || !slices.Equal(got.Types, tt.want.Types) || !got.Since.Equal(tt.want.Since) || !got.Until.Equal(tt.want.Until) || got.Project != tt.want.Project {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFilterSubjects(t *testing.T) {
	s := contract.Subjects{}
	tests := []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"chat.dlq.>"}},
		// Without a project, the v1 subjects and every project's (one token
		// more) are read.
		{Filter{ChatID: "email:jo@example.com"}, []string{"chat.dlq.*.email%3Ajo%40example%2Ecom", "chat.dlq.*.*.email%3Ajo%40example%2Ecom"}},
		{Filter{Types: []string{"send", "note"}}, []string{"chat.dlq.send.*", "chat.dlq.note.*", "chat.dlq.*.send.*", "chat.dlq.*.note.*"}},
		// chat.dlq.invalid.> and chat.dlq.*.invalid.> overlap, which a
		// consumer's filters may not: all are read, and matched.
		{Filter{Types: []string{"send", "invalid"}}, []string{"chat.dlq.>"}},
		{Filter{Types: []string{"note"}, ChatID: "abc"}, []string{"chat.dlq.note.abc", "chat.dlq.*.note.abc"}},
		{Filter{Project: "acme"}, []string{"chat.dlq.acme.>"}},
		{Filter{Project: "acme", Types: []string{"send", "invalid"}}, []string{"chat.dlq.acme.send.*", "chat.dlq.acme.invalid.>"}},
		{Filter{Project: "acme", ChatID: "abc"}, []string{"chat.dlq.acme.*.abc"}},
	}
	for _, tt := range tests {
		if got := tt.f.subjects(s); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.f, got, tt.want)
		}
	}
}

func TestSplitDeadSubject(t *testing.T) {
	for _, tt := range []struct{ subject, project, typ, token string }{
		{"chat.dlq.send.abc", "", "send", "abc"},
		{"chat.dlq.invalid.frob.a", "", "invalid", "frob.a"},
		{"chat.dlq.invalid.unknown", "", "invalid", "unknown"},
		{"chat.dlq.acme.send.abc", "acme", "send", "abc"},
		{"chat.dlq.acme.invalid.frob.a", "acme", "invalid", "frob.a"},
	} {
		p, typ, tok := splitDeadSubject(contract.Subjects{}, tt.subject)
		if p != tt.project || typ != tt.typ || tok != tt.token {
			t.Errorf("%s: %q %q %q, want %q %q %q", tt.subject, p, typ, tok, tt.project, tt.typ, tt.token)
		}
	}
}
