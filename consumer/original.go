package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
)

// A command whose id already succeeded gets a result again: "succeeded"
// for a redelivery of the message that succeeded, "duplicate" for any
// other. The idempotency record keeps the response's digest, not the
// response; the original result on the results stream has it, and is
// found by its subject (the command's), its Nats-Msg-Id (<id>:<the
// record's Sequence>) and its time (the record's).

// maxOriginalScan bounds how many of a chat's results are read to find the
// original one: those stored since a minute before the record completed.
const maxOriginalScan = 1000

// repeatResult builds the result for d, whose id succeeded as rec says.
// When the response cannot be recovered (the original result is no longer
// stored), the result says null and carries the record's digest.
func (rs *records) repeatResult(ctx context.Context, d *delivery, rec idempotency.Record, seq uint64) *actions.Result {
	out := contract.Outcome{APIStatus: rec.APIStatus, Response: rec.Response}
	missing := ""
	if len(out.Response) == 0 && rec.Digest != "" && rec.Digest != nullDigest {
		orig, err := rs.originalResult(ctx, d, rec)
		switch {
		case err != nil:
			d.log.Warn("reading the original result failed: the result carries the response's digest", zap.Error(err))
			missing = rec.Digest
		case orig == nil:
			d.log.Info("the original result is no longer stored: the result carries the response's digest")
			missing = rec.Digest
		default:
			out.Response = orig.Response
		}
	}
	res := rs.result(d, resultStatus(rec, seq), rec.Attempts, out)
	res.ResponseDigest = missing
	return res
}

// nullDigest is the digest of no response: nothing to look up.
var nullDigest, _ = contract.ResponseDigest(nil)

// originalResult reads the result that the record rec's success published
// for d's command, or returns nil when the results stream no longer has it.
// It uses direct gets (the results stream allows them), one message at a
// time and only on the command's own result subject.
func (rs *records) originalResult(ctx context.Context, d *delivery, rec idempotency.Record) (*actions.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	stream := rs.topo.ResultsStream
	subject := rs.topo.Subjects.For(d.cmd.Project).Result(d.cmd.Type, d.cmd.ChatID)
	msgID := actions.RecordID(d.cmd.ID, rec.Sequence)
	// The result is stored while the record completes; a minute's margin
	// covers stream leaders whose clocks disagree.
	since := rec.CompletedAt.Add(-time.Minute)
	req := map[string]any{"next_by_subj": subject, "start_time": since}
	for range maxOriginalScan {
		m, seq, err := directGet(ctx, rs.js.Conn(), stream, req)
		if err != nil || m == nil {
			return nil, err
		}
		if m.Header.Get(jetstream.MsgIDHeader) == msgID || rec.Sequence == 0 {
			var res actions.Result
			if err := json.Unmarshal(m.Data, &res); err != nil {
				return nil, fmt.Errorf("decode the result at %s %d: %w", stream, seq, err)
			}
			if res.ID == d.cmd.ID && res.Status == contract.StatusSucceeded {
				return &res, nil
			}
		}
		req = map[string]any{"next_by_subj": subject, "seq": seq + 1}
	}
	return nil, nil
}

// directGet asks the stream for one message (a JetStream direct get),
// returning it and its sequence, or nil when there is none.
func directGet(ctx context.Context, nc *nats.Conn, stream string, req map[string]any) (*nats.Msg, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	m, err := nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+stream, body)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, 0, nil // no such stream
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", stream, err)
	}
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404":
		return nil, 0, nil
	default:
		return nil, 0, fmt.Errorf("read %s: status %s %s", stream, status, m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: no sequence in the reply", stream)
	}
	return m, seq, nil
}
