package contract

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/chatworker/worker/schema"
)

// TestSpecs holds each entry of the table to its body type: the body builds
// a command of its type, and has a Content or From field exactly when the
// type takes one.
func TestSpecs(t *testing.T) {
	seenVerb := map[string]bool{}
	for i, s := range Specs() {
		t.Run(string(s.Type), func(t *testing.T) {
			if got := s.Body.Command().Type; got != s.Type {
				t.Errorf("%T builds a command of type %q", s.Body, got)
			}
			if slices.Index(Types(), s.Type) != i {
				t.Errorf("type %q is in the table twice", s.Type)
			}
			body := reflect.TypeOf(s.Body)
			for _, f := range []struct {
				name string
				want bool
			}{{"Content", s.Content}, {"From", s.From}} {
				if _, got := body.FieldByName(f.name); got != f.want {
					t.Errorf("%s has a field %s: %v; the table says %v", body, f.name, got, f.want)
				}
			}
			if s.Verb != "" {
				if seenVerb[s.Verb] {
					t.Errorf("verb %q twice", s.Verb)
				}
				seenVerb[s.Verb] = true
				if s.Help == "" {
					t.Errorf("verb %q has no help line", s.Verb)
				}
			}
		})
	}
}

// TestSchemaMatchesSpecs: schema/command.schema.json names the table's
// types, and requires "content" and allows "from" for the same ones.
func TestSchemaMatchesSpecs(t *testing.T) {
	data, err := schema.FS.ReadFile(schema.Command)
	if err != nil {
		t.Fatal(err)
	}
	type cond struct {
		If struct {
			Properties struct {
				Type struct {
					Enum  []Type `json:"enum"`
					Const Type   `json:"const"`
				} `json:"type"`
			} `json:"properties"`
		} `json:"if"`
		Then struct {
			Required []string `json:"required"`
		} `json:"then"`
		Else struct {
			Not struct {
				Required []string `json:"required"`
			} `json:"not"`
		} `json:"else"`
	}
	var sch struct {
		Properties struct {
			Type struct {
				Enum []Type `json:"enum"`
			} `json:"type"`
		} `json:"properties"`
		AllOf []cond `json:"allOf"`
	}
	if err := json.Unmarshal(data, &sch); err != nil {
		t.Fatal(err)
	}
	if got := sch.Properties.Type.Enum; !slices.Equal(got, Types()) {
		t.Errorf("the schema's types are %q, the table's %q", got, Types())
	}
	// The types each field is allowed for, by the schema's if/else.
	allowed := map[string][]Type{}
	for _, c := range sch.AllOf {
		types := c.If.Properties.Type.Enum
		if c.If.Properties.Type.Const != "" {
			types = []Type{c.If.Properties.Type.Const}
		}
		for _, f := range c.Else.Not.Required {
			allowed[f] = types
		}
	}
	for _, f := range []struct {
		field string
		takes func(Spec) bool
	}{
		{"content", func(s Spec) bool { return s.Content }},
		{"from", func(s Spec) bool { return s.From }},
		{"frequency_cap", func(s Spec) bool { return s.Type == TypeSend }},
	} {
		want := typesWhere(f.takes)
		if got := allowed[f.field]; !slices.Equal(got, want) {
			t.Errorf("the schema allows %q for %q, the table for %q", f.field, got, want)
		}
	}
}

// TestDocsNameEveryType: the contract's subject rule and its row of the
// "type" field name the table's types.
func TestDocsNameEveryType(t *testing.T) {
	data, err := os.ReadFile("../docs/contract.md")
	if err != nil {
		t.Fatal(err)
	}
	var quoted []string
	for _, t := range Types() {
		quoted = append(quoted, "`"+string(t)+"`")
	}
	list := orList(quoted)
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{"- `<type>` is " + list + ".", "| `type` | required | " + list + ";"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("docs/contract.md has no line starting %q", want)
		}
	}
}
