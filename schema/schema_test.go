package schema_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/schematest"
)

// TestSchemasMatchGoTypes: each schema declares exactly the JSON fields of
// the Go type that is encoded or decoded as that record, so a field added
// to one and not the other fails here.
func TestSchemasMatchGoTypes(t *testing.T) {
	tests := []struct {
		name   string
		schema *schematest.Schema
		typ    any
		ahead  []string // in the schema before the Go type has them
	}{
		{"command", schematest.Command(t), contract.Command{}, []string{"not_after"}},
		{"result", schematest.Result(t), contract.Result{}, nil},
		{"dead letter", schematest.DeadLetter(t), contract.DeadLetter{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goFields := jsonFields(reflect.TypeOf(tt.typ))
			props := tt.schema.Properties()
			for _, f := range goFields {
				if !slices.Contains(props, f) {
					t.Errorf("the Go type has %q, the schema does not", f)
				}
			}
			for _, p := range props {
				if !slices.Contains(goFields, p) && !slices.Contains(tt.ahead, p) {
					t.Errorf("the schema has %q, the Go type does not", p)
				}
			}
		})
	}
	t.Run("dead letter error", func(t *testing.T) {
		got := schematest.DeadLetter(t).Nested("error")
		want := jsonFields(reflect.TypeOf(contract.ErrorInfo{}))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema error properties %q, Go type %q", got, want)
		}
	})
}

func jsonFields(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
	}
	return names
}
