package consumer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// FuzzDeadLetter runs what the worker does with a message before any API
// call (header limits, Decode) and, when that refuses it, the dead letter it
// would publish. Invariants, for any subject the commands stream captures
// and any body and headers it accepts:
//   - exactly one outcome: a command to execute, or an invalid dead letter;
//   - the dead letter fits in a NATS message and goes to a literal subject
//     under chat.dlq.;
//   - decoding the published dead letter gives back the body byte for byte.
//
// Run it longer with:
//
//	go test -run '^$' -fuzz '^FuzzDeadLetter$' -fuzztime 10m ./consumer
func FuzzDeadLetter(f *testing.F) {
	f.Add("chat.commands.send.abc", []byte(`{"id":"1","type":"send","chat_id":"abc","content":"Hello!"}`), "traceparent", "00-1-2-01", uint8(1))
	f.Add("chat.commands.send.abc", []byte("{ \"id\" : \"1\",\n \"type\":\"send\",\"chat_id\":\"abc\",\"contnet\":\"<b>&\"}"), "X", "y", uint8(3))
	f.Add("chat.commands.send.abc", []byte("\xff\xfe\x00nul"), "X", "\x00", uint8(65))
	f.Add("chat.commands.frob.abc", []byte(`{"type":"`+strings.Repeat("\x01", 2000)+`"}`), "X", strings.Repeat("v", 8200), uint8(1))
	f.Add("chat.commands.send.a.b.c", []byte(strings.Repeat("[", 10000)), "", "", uint8(0))
	f.Add("chat.commands.note.x", []byte(`{"id":"1","type":"note","chat_id":"x","content":"`+strings.Repeat("<", contract.MaxMessageBytes)+`"}`), "", "", uint8(0))
	f.Add("chat.commands.send.x", bytes.Repeat([]byte{0}, MaxCommandMsgSize-64), "", "", uint8(0))
	f.Add("chat.commands.send.x", []byte(`{"id":"1","type":"send","chat_id":"x","content":"\u2028"}`+"\n"), "", "", uint8(0))
	f.Add("chat.commands.send.x", []byte(`{}`), "", "", uint8(0))
	f.Add("chat.commands.send.x", []byte(``), "", "", uint8(0))

	log := zap.NewNop()
	subjects := actions.Subjects{}
	x := &executor{records: &records{name: "fuzz/1", now: time.Now}}
	c := &completer{subjects: subjects, log: log}
	f.Fuzz(func(t *testing.T, subject string, data []byte, name, value string, n uint8) {
		if !literalSubject(subject) || !strings.HasPrefix(subject, "chat.commands.") || !validHeader(name, value) {
			t.Skip("JetStream would not accept this message on the commands stream")
		}
		h := nats.Header{}
		for range n {
			h.Add(name, value)
		}
		if hdrSize(h)+len(data) > MaxCommandMsgSize {
			t.Skip("over the commands stream's MaxMsgSize")
		}
		d := &delivery{subject: subject, data: data, headers: h, log: cmdLog{base: log}, traceparent: h.Get("traceparent"),
			meta: &jetstream.MsgMetadata{Stream: "CHAT_COMMANDS", Sequence: jetstream.SequencePair{Stream: 7}}}

		// The decision process makes before any work.
		err := contract.CheckHeaders(h)
		if err == nil {
			d.cmd, err = contract.Decode(subjects, subject, data)
		}
		if err == nil {
			return // a command: it goes on to execution and ends as a result or a dead letter there
		}
		if execute.ClassOf(err) != contract.ClassInvalid {
			t.Fatalf("refused before any work with class %s: %v", execute.ClassOf(err), err)
		}
		v := x.carryOut(d, nil, RetryPolicy{}.WithDefaults().decideUnclaimed(err, 1), err)
		if v.dead == nil || v.result != nil || v.retryIn != 0 {
			t.Fatalf("verdict %+v, want exactly a dead letter", v)
		}
		if v.dead.Error.Class != contract.ClassInvalid || len(v.dead.Error.Message) > 2*contract.MaxMessageLen || !utf8.ValidString(v.dead.Error.Message) {
			t.Fatalf("error %+v: want class invalid and a short UTF-8 message", v.dead.Error)
		}
		dlSubject := c.deadLetterSubject(d)
		if !literalSubject(dlSubject) || !strings.HasPrefix(dlSubject, "chat.dlq.") {
			t.Fatalf("dead-letter subject %q is not a literal subject under chat.dlq.", dlSubject)
		}
		enc, err := json.Marshal(v.dead)
		if err != nil {
			t.Fatalf("encoding the dead letter: %v", err)
		}
		if len(enc) > 1<<20-1024 {
			t.Fatalf("dead letter of %d bytes does not fit a 1 MiB NATS message", len(enc))
		}
		var back actions.DeadLetter
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("decoding the dead letter: %v", err)
		}
		if !bytes.Equal(back.Body(), data) {
			t.Fatalf("body did not round-trip:\n got %q\nwant %q", back.Body(), data)
		}
		if back.Command != nil && !json.Valid(back.Command) {
			t.Fatalf("command %q is not JSON", back.Command)
		}
	})
}

// literalSubject: what a publisher can publish to (no wildcards, no empty
// tokens, no white space or control bytes).
func literalSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// validHeader: a header line NATS can carry.
func validHeader(name, value string) bool {
	if name == "" {
		return value == ""
	}
	return !strings.ContainsAny(name, ": \r\n\t") && !strings.ContainsAny(value, "\r\n")
}

func hdrSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
