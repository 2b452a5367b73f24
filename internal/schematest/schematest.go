package schematest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go/jetstream"
	"sync"
	"testing"

	"github.com/chatworker/worker/schema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is one compiled schema.
type Schema struct {
	name string
	s    *jsonschema.Schema
}

var (
	once     sync.Once
	compiled map[string]*Schema
	errLoad  error
)

// load compiles the three schemas once per test binary. Formats (date-time)
// are asserted, as a strict validator in another language would.
func load() (map[string]*Schema, error) {
	once.Do(func() {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		compiled = map[string]*Schema{}
		for _, name := range []string{schema.Command, schema.Result, schema.DeadLetter} {
			data, err := schema.FS.ReadFile(name)
			if err != nil {
				errLoad = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				errLoad = fmt.Errorf("%s: %w", name, err)
				return
			}
			if err := c.AddResource(name, doc); err != nil {
				errLoad = fmt.Errorf("%s: %w", name, err)
				return
			}
			s, err := c.Compile(name)
			if err != nil {
				errLoad = fmt.Errorf("%s: %w", name, err)
				return
			}
			compiled[name] = &Schema{name: name, s: s}
		}
	})
	return compiled, errLoad
}

func get(t testing.TB, name string) *Schema {
	t.Helper()
	m, err := load()
	if err != nil {
		t.Fatalf("schematest: %v", err)
	}
	return m[name]
}

// Command, Result and DeadLetter return the compiled schemas.
func Command(t testing.TB) *Schema    { return get(t, schema.Command) }
func Result(t testing.TB) *Schema     { return get(t, schema.Result) }
func DeadLetter(t testing.TB) *Schema { return get(t, schema.DeadLetter) }

// Check validates the JSON document data. A document that is not JSON is
// an error too, as it would be for any validator.
func (s *Schema) Check(data []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.s.Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// Valid fails the test unless data validates.
func (s *Schema) Valid(t testing.TB, data []byte) {
	t.Helper()
	if err := s.Check(data); err != nil {
		t.Errorf("%s does not validate: %v\n%s", s.name, err, data)
	}
}

// Properties lists the names of the schema's top-level properties, to hold
// them against a Go type's JSON fields.
func (s *Schema) Properties() []string {
	names := make([]string, 0, len(s.s.Properties))
	for name := range s.s.Properties {
		names = append(names, name)
	}
	return names
}

// Nested lists the properties of the object property name.
func (s *Schema) Nested(name string) []string {
	p := s.s.Properties[name]
	if p == nil {
		return nil
	}
	names := make([]string, 0, len(p.Properties))
	for n := range p.Properties {
		names = append(names, n)
	}
	return names
}

// Stream validates every message stored in stream against s and returns
// how many there were: a test that ran a pipeline calls it on the results
// and dead-letter streams, typically in a t.Cleanup registered after the
// server started (so it runs before the server stops).
func Stream(t testing.TB, js jetstream.JetStream, stream string, s *Schema) int {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		// A test that ended with its server stopped, or never made the
		// stream, has nothing here to check.
		t.Logf("schematest: records in %s not checked: %v", stream, err)
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Logf("schematest: records in %s not checked: %v", stream, err)
		return 0
	}
	n := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("schematest: %s sequence %d: %v", stream, seq, err)
		}
		n++
		if err := s.Check(m.Data); err != nil {
			t.Errorf("%s sequence %d (%s) does not validate: %v\n%s", stream, seq, m.Subject, err, m.Data)
		}
	}
	return n
}
