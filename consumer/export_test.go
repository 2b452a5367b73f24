package consumer_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/export"
)

// TestExportCommand: an app asks for one conversation's export on the
// queue; the result says where it went. Without a target, the command is a
// permanent dead letter that says how to configure one.
func TestExportCommand(t *testing.T) {
	p := newBarePipeline(t)
	sink, err := export.OpenObjectStore(t.Context(), p.JS, "TEST_EXPORTS", 1)
	if err != nil {
		t.Fatal(err)
	}
	p.Executor.Exporter = &export.Exporter{Client: p.Client, Sink: sink}
	p.Start(p.Executor)
	p.Publish(actions.Send{ChatID: "email:jo@example.com", Content: "Hello"})
	p.Publish(actions.Export{ChatID: "email:jo@example.com"})
	results := p.Results(2)
	r := results[1]
	if r.Type != contract.TypeExport || r.Status != contract.StatusSucceeded {
		t.Fatalf("export result = %+v", r)
	}
	var body struct {
		Location string `json:"location"`
		Messages int    `json:"messages"`
	}
	if err := json.Unmarshal(r.Response, &body); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body.Location, "nats-object://TEST_EXPORTS/") || body.Messages != 1 {
		t.Errorf("export result response = %s", r.Response)
	}
}

func TestExportCommandWithoutTarget(t *testing.T) {
	p := newPipeline(t)
	p.Publish(actions.Export{ChatID: "abc"})
	d := p.DeadLetters(1)[0]
	if d.Error.Class != contract.ClassPermanent || !strings.Contains(d.Error.Message, "--export-bucket") {
		t.Errorf("dead letter = %+v", d.Error)
	}
}
