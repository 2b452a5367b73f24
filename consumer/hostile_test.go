package consumer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
)

// TestHostileMessages sends nasty messages through the real pipeline. Each
// one the stream accepts ends as exactly one result or dead letter; every
// dead letter gives back the original body byte for byte; chat IDs made of
// path syntax reach the API as exactly their chat.
func TestHostileMessages(t *testing.T) {
	p := newPipeline(t)
	manyHeaders := nats.Header{}
	for i := range contract.MaxHeaders + 1 {
		manyHeaders.Set(fmt.Sprintf("X-%d", i), "v")
	}
	valid := func(typ, chatID string) (string, []byte) {
		body, err := json.Marshal(map[string]string{"id": "id-" + url.QueryEscape(chatID), "type": typ, "chat_id": chatID, "content": "hi"})
		if err != nil {
			t.Fatal(err)
		}
		return actions.Subjects{}.Command(actions.Type(typ), chatID), body
	}
	type msg struct {
		name    string
		subject string
		data    []byte
		header  nats.Header
		result  bool // a result, not a dead letter
	}
	msgs := []msg{
		{name: "invalid UTF-8", subject: "chat.commands.send.a", data: []byte("{\"id\":\"\xff\"}")},
		{name: "NUL bytes", subject: "chat.commands.send.a", data: []byte("\x00\x00{\x00}")},
		{name: "near the size limit", subject: "chat.commands.send.a", data: bytes.Repeat([]byte("\xfe"), consumer.MaxCommandMsgSize-512)},
		{name: "deeply nested", subject: "chat.commands.send.a", data: []byte(strings.Repeat(`{"a":`, 5000))},
		{name: "JSON that compacts differently", subject: "chat.commands.send.a",
			data: []byte("{ \"id\": \"x1\",\n  \"type\": \"send\", \"chat_id\": \"a\", \"content\": \"<b>\", \"extra\": 1 }\n")},
		{name: "too many headers", subject: "chat.commands.send.a", header: manyHeaders, data: []byte(`{"id":"h1","type":"send","chat_id":"a","content":"x"}`)},
		{name: "headers too large", subject: "chat.commands.send.a", header: nats.Header{"X-Big": {strings.Repeat("v", contract.MaxHeaderBytes)}},
			data: []byte(`{"id":"h2","type":"send","chat_id":"a","content":"x"}`)},
		{name: "unknown type in subject", subject: "chat.commands.frob.a", data: []byte(`{}`)},
		{name: "non-canonical token", subject: "chat.commands.send.%2e%2e", data: []byte(`{}`)},
	}
	for _, id := range []string{"a/b", "../archive", "%2F", "/", "x?api_key=evil", "x#frag", "tab\there", "nul\x00", "é"} {
		s, b := valid("send", id)
		msgs = append(msgs, msg{name: "chat ID " + id, subject: s, data: b, result: true})
	}

	bySeq := map[uint64]msg{}
	for _, m := range msgs {
		ack, err := p.JS.PublishMsg(t.Context(), &nats.Msg{Subject: m.subject, Data: m.data, Header: m.header})
		if err != nil {
			t.Fatalf("%s: publish: %v", m.name, err)
		}
		bySeq[ack.Sequence] = m
	}
	// A message the worker could not dead-letter in full never gets in.
	if _, err := p.JS.Publish(t.Context(), "chat.commands.send.a", make([]byte, consumer.MaxCommandMsgSize+1)); err == nil {
		t.Error("the commands stream accepted a message over MaxCommandMsgSize")
	}

	wantResults := 0
	for _, m := range msgs {
		if m.result {
			wantResults++
		}
	}
	p.Settled()
	results, dead := p.Results(wantResults), p.DeadLetters(len(msgs)-wantResults)
	if n := p.Count("CHAT_RESULTS") + p.Count("CHAT_DLQ"); n != uint64(len(msgs)) {
		t.Errorf("%d records for %d messages", n, len(msgs))
	}
	for _, d := range dead {
		m, ok := bySeq[d.Sequence]
		if !ok || m.result {
			t.Errorf("unexpected dead letter for seq %d: %+v", d.Sequence, d.Error)
			continue
		}
		if d.Error.Class != contract.ClassInvalid {
			t.Errorf("%s: class %s, want invalid (%s)", m.name, d.Error.Class, d.Error.Message)
		}
		if !bytes.Equal(d.Body(), m.data) {
			t.Errorf("%s: dead letter body differs from the original (%d vs %d bytes)", m.name, len(d.Body()), len(m.data))
		}
	}
	for _, r := range results {
		if r.Status != contract.StatusSucceeded {
			t.Errorf("result %+v", r)
		}
	}
	effects := p.Sim.Effects()
	seen := map[string]bool{}
	for _, e := range effects {
		if e.Path != "/chat/v1/chats/"+url.PathEscape(e.ChatID)+"/messages" {
			t.Errorf("chat %q reached the API on path %q", e.ChatID, e.Path)
		}
		seen[e.ChatID] = true
	}
	for _, m := range msgs {
		if !m.result {
			continue
		}
		cmd, err := contract.Decode(actions.Subjects{}, m.subject, m.data)
		if err != nil {
			t.Fatal(err)
		}
		if !seen[cmd.ChatID] {
			t.Errorf("%s: no effect on chat %q (effects %+v)", m.name, cmd.ChatID, effects)
		}
	}
}
