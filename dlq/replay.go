package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// ReplayedFromHeader marks a republished command with the dead letter it
// came from ("CHAT_DLQ:42"), so a command that dies again can be traced; a
// replayed command is not held to a frequency cap.
const ReplayedFromHeader = contract.ReplayedFromHeader

// ReplayOptions control a replay.
type ReplayOptions struct {
	// Rate caps republishes per second; 0 means no cap.
	Rate float64
	// DryRun reports what would happen and changes nothing.
	DryRun bool
	// IncludeInvalid replays dead letters of class invalid too. They failed
	// because the command itself is malformed, so they usually fail again.
	IncludeInvalid bool
	// NotAfter, when set, replaces the not_after deadline of every command
	// republished. Without it a command keeps its deadline, and one already
	// past it expires again without an API call (see Entry.PastDeadline).
	NotAfter time.Time
	// Progress, when set, is called after each dead letter.
	Progress func(Step)

	// afterPublish runs after a republish was stored and before its dead
	// letter is deleted; an error stops the replay there, as a crash would.
	afterPublish func(Entry) error
}

// Action is what replay did with one dead letter.
type Action string

const (
	Replayed    Action = "replayed"     // republished and removed
	Republished Action = "already"      // an earlier, interrupted replay had republished it: removed
	WouldReplay Action = "would-replay" // dry run
	Skipped     Action = "skipped"      // cannot or may not be replayed: left in place
)

// Counts add up what a replay did.
type Counts struct {
	Replayed int `json:"replayed"` // including Already
	Already  int `json:"already"`  // republished by an earlier run, now removed
	Skipped  int `json:"skipped"`
}

// Step reports one dead letter handled by Replay.
type Step struct {
	Entry   Entry
	Action  Action
	Reason  string // why it was skipped
	Done    int    // dead letters handled so far, this one included
	Total   int
	Counts  Counts
	Elapsed time.Duration
}

// Replay republishes each dead letter's command to its original subject and
// removes the dead letter once JetStream has stored the republish. Entries
// come from List. It stops at the first NATS failure; what was done is in
// the returned Counts, and running the same replay again is safe:
//
//   - the republish carries Nats-Msg-Id "<command id>:replay:<dead-letter
//     sequence>", so a republish whose dead letter was not yet removed is
//     dropped by the commands stream as a duplicate within its window;
//   - after the window, the idempotency store still keeps a command that
//     succeeded from running twice.
func (q *Queue) Replay(ctx context.Context, entries []Entry, opts ReplayOptions) (Counts, error) {
	var (
		c     Counts
		lim   *rate.Limiter
		start = time.Now()
	)
	if opts.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(opts.Rate), 1)
	}
	report := func(i int, e Entry, a Action, reason string) {
		if opts.Progress != nil {
			opts.Progress(Step{Entry: e, Action: a, Reason: reason, Done: i + 1, Total: len(entries), Counts: c, Elapsed: time.Since(start)})
		}
	}
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		if reason := q.unreplayable(e, opts.IncludeInvalid); reason != "" {
			c.Skipped++
			report(i, e, Skipped, reason)
			continue
		}
		if opts.DryRun {
			c.Replayed++
			report(i, e, WouldReplay, "")
			continue
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					return c, ctx.Err()
				}
				return c, err
			}
		}
		ack, err := q.republishWithDeadline(ctx, e, opts.NotAfter)
		if err != nil {
			if ctx.Err() != nil {
				return c, ctx.Err()
			}
			return c, fmt.Errorf("republish dead letter %d (command %q) to %s: %w; it stays in %s, and running the replay again is safe",
				e.Seq, e.ID, e.Letter.Subject, err, q.cfg.Stream)
		}
		if opts.afterPublish != nil {
			if err := opts.afterPublish(e); err != nil {
				return c, err
			}
		}
		if err := q.delete(ctx, e.Seq); err != nil {
			return c, fmt.Errorf("%w; its command was republished, so running the replay again only removes it", err)
		}
		c.Replayed++
		action := Replayed
		if ack.Duplicate {
			c.Already++
			action = Republished
		}
		report(i, e, action, "")
	}
	return c, nil
}

// unreplayable says why e cannot or may not be replayed, or "".
func (q *Queue) unreplayable(e Entry, includeInvalid bool) string {
	commands := strings.TrimSuffix(q.cfg.Subjects.CommandsFilter(), ">")
	switch {
	case e.Malformed != "":
		return e.Malformed
	case len(e.Letter.Command) == 0 && len(e.Letter.Raw) > 0:
		return rawReason(e.Letter.Raw) + ", so it cannot be replayed: publish a corrected command, then purge this one"
	case len(e.Letter.Command) == 0:
		return "the dead letter holds no command"
	case e.Class() == contract.ClassInvalid && !includeInvalid:
		return "class invalid: the command itself is malformed and would fail again (--include-invalid replays it anyway)"
	case !strings.HasPrefix(e.Letter.Subject, commands) || strings.ContainsAny(e.Letter.Subject, " \t\r\n*>"):
		return fmt.Sprintf("its original subject %q is not a command subject (%s...)", e.Letter.Subject, commands)
	}
	return ""
}

// rawReason says why the worker kept a command as raw bytes rather than as
// JSON: a command over the size limit is kept raw whatever it holds, and
// calling that "not JSON" sent people looking for a syntax error.
func rawReason(raw []byte) string {
	switch {
	case len(raw) > contract.MaxMessageBytes:
		return fmt.Sprintf("the command is %d bytes, over the %d-byte limit (kept as raw bytes)", len(raw), contract.MaxMessageBytes)
	case !utf8.Valid(raw):
		return "the command is not valid UTF-8 (kept as raw bytes)"
	case json.Valid(raw):
		return "the command is JSON but not an object (kept as raw bytes)"
	}
	return "the command was not JSON (kept as raw bytes)"
}

// republish publishes e's command as it was first received, and waits for
// the commands stream to store it.
func (q *Queue) republish(ctx context.Context, e Entry) (*jetstream.PubAck, error) {
	return q.republishWithDeadline(ctx, e, time.Time{})
}

// republishWithDeadline is republish with the command's not_after replaced
// when notAfter is set.
func (q *Queue) republishWithDeadline(ctx context.Context, e Entry, notAfter time.Time) (*jetstream.PubAck, error) {
	body := e.Letter.Body()
	if !notAfter.IsZero() {
		var err error
		if body, err = withDeadline(body, notAfter); err != nil {
			return nil, err
		}
	}
	msg := &nats.Msg{Subject: e.Letter.Subject, Data: body, Header: nats.Header{}}
	for k, vs := range e.Letter.Headers {
		// Nats-* headers steer JetStream (the original Nats-Msg-Id would be
		// dropped as a duplicate within the window; expectations would fail).
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		for _, v := range vs {
			msg.Header.Add(k, v)
		}
	}
	msg.Header.Set(ReplayedFromHeader, q.cfg.Stream+":"+strconv.FormatUint(e.Seq, 10))
	id := e.ID
	if id == "" {
		id = "-"
	}
	pctx, cancel := withTimeout(ctx)
	defer cancel()
	return q.js.PublishMsg(pctx, msg,
		jetstream.WithMsgID(id+":replay:"+strconv.FormatUint(e.Seq, 10)),
		jetstream.WithExpectStream(q.cfg.CommandsStream))
}

// PastDeadline reports whether e's command has a not_after at or before now:
// replayed as it is, it expires again without an API call.
func (e Entry) PastDeadline(now time.Time) bool {
	var c struct {
		NotAfter string `json:"not_after"`
	}
	if json.Unmarshal(e.Letter.Command, &c) != nil || c.NotAfter == "" {
		return false
	}
	t, err := contract.ParseDeadline(c.NotAfter)
	return err == nil && !now.Before(t)
}

// withDeadline sets the command's not_after, leaving every other field as it
// was (their layout does not matter to the idempotency hash, and the
// deadline is not part of it).
func withDeadline(body []byte, notAfter time.Time) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("the command is not a JSON object, so no new deadline can be set: %v", err)
	}
	t, err := json.Marshal(notAfter.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return nil, err
	}
	fields["not_after"] = t
	return json.Marshal(fields)
}
