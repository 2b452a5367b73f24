package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Settled is what became of a command: its result or its dead letter.
// Exactly one of Result and DeadLetter is set.
type Settled struct {
	Result     *Result
	DeadLetter *DeadLetter
	// Subject, Sequence and Data are the record as stored: its subject, its
	// sequence in the results or dead-letter stream, its JSON.
	Subject  string
	Sequence uint64
	Data     json.RawMessage
	// AlreadyPublished: the publish was a duplicate of the same command
	// (ErrAlreadyPublished), and this is the first one's record.
	AlreadyPublished bool
}

// ErrNotSettled: no result or dead letter arrived before the context ended.
// The command may still run: ask Status later.
var ErrNotSettled = errors.New("no result or dead letter yet")

// PublishAndWait publishes c as Publish does and returns its result or dead
// letter. It starts reading both streams for c's subject before publishing,
// so a record stored at once is not missed, and matches the record to this
// publish by its Nats-Msg-Id (<command id>:<stream sequence>). The context
// bounds the wait: when it ends first, the error wraps ErrNotSettled and
// the context's error.
//
// The wait survives a reconnect (a NATS server restart, say): it reads
// from the sequences the streams had before publishing, and after a
// reconnect or a read error it also looks the record up directly, so a
// record stored while the connection was down is found.
//
// Publishing the same command again (ErrAlreadyPublished) waits for the
// first one's record, which may already be stored; a different command
// under a used id returns the ErrIDReused error at once.
func PublishAndWait(ctx context.Context, js jetstream.JetStream, c Commander, s Subjects, opts ...Option) (Command, Settled, error) {
	o := newOptions(opts)
	cmd := c.Command()
	if cmd.ID == "" {
		cmd.ID = contract.NewID()
	}
	if err := cmd.Validate(); err != nil {
		return cmd, Settled{}, err
	}
	subjects := []string{s.Result(cmd.Type, cmd.ChatID), s.DeadLetter(cmd.Type, contract.Token(cmd.ChatID))}
	w, err := watch(ctx, js, o, subjects, false)
	if err != nil {
		return cmd, Settled{}, err
	}
	defer w.stop()
	cmd, seq, err := publish(ctx, js, cmd, s, o)
	again := errors.Is(err, ErrAlreadyPublished)
	switch {
	case again:
		// Its records may be stored already: read the subjects from the
		// start.
		w.stop()
		if w, err = watch(ctx, js, o, subjects, true); err != nil {
			return cmd, Settled{}, err
		}
		defer w.stop()
	case err != nil:
		return cmd, Settled{}, err
	}
	want := RecordID(cmd.ID, seq)
	settled := func(subject string, data []byte, seq uint64) (Command, Settled, error) {
		st, err := settledFrom(subject, data, s, seq)
		st.AlreadyPublished = again
		return cmd, st, err
	}
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return cmd, Settled{}, fmt.Errorf("command %s: %w within the wait: %w", cmd.ID, ErrNotSettled, ctx.Err())
		case m := <-w.msgs:
			if m.Headers().Get(jetstream.MsgIDHeader) != want {
				continue
			}
			return settled(m.Subject(), m.Data(), sequenceOf(m))
		case <-w.lost:
		case <-retry:
		}
		// The connection came back or a read failed: what was stored
		// meanwhile may never reach the consumers, so look it up.
		m, err := w.lookup(ctx, want)
		retry = nil
		switch {
		case m != nil:
			return settled(m.Subject, m.Data, m.Sequence)
		case err != nil && ctx.Err() == nil:
			// The server may not serve JetStream yet just after a restart.
			retry = time.After(lookupRetry)
		}
	}
}

// lookupRetry is how soon a failed look-up is tried again.
const lookupRetry = time.Second

// RecordID is the Nats-Msg-Id of the result or dead letter of the command
// id stored at sequence seq of the commands stream.
func RecordID(id string, seq uint64) string { return id + ":" + strconv.FormatUint(seq, 10) }

// recordOf reports whether msgID is the Nats-Msg-Id of a record of id.
func recordOf(msgID, id string) bool {
	seq, ok := strings.CutPrefix(msgID, id+":")
	if !ok || seq == "" {
		return false
	}
	_, err := strconv.ParseUint(seq, 10, 64)
	return err == nil
}

func sequenceOf(m jetstream.Msg) uint64 {
	if meta, err := m.Metadata(); err == nil {
		return meta.Sequence.Stream
	}
	return 0
}

// settledFrom decodes a record found on subject. Records are ours, but read
// leniently: a field a later worker adds is ignored.
func settledFrom(subject string, data []byte, s Subjects, seq uint64) (Settled, error) {
	st := Settled{Subject: subject, Sequence: seq, Data: json.RawMessage(data)}
	if strings.HasPrefix(subject, strings.TrimSuffix(s.ResultsFilter(), ">")) {
		st.Result = new(Result)
		if err := json.Unmarshal(data, st.Result); err != nil {
			return st, fmt.Errorf("read the result on %s: %w", subject, err)
		}
		return st, nil
	}
	st.DeadLetter = new(DeadLetter)
	if err := json.Unmarshal(data, st.DeadLetter); err != nil {
		return st, fmt.Errorf("read the dead letter on %s: %w", subject, err)
	}
	return st, nil
}

// inactive is how soon the server drops an ordered consumer no one reads.
const inactive = 10 * time.Second

// watcher reads the records on a few subjects of the results and
// dead-letter streams, through one ordered consumer per stream.
type watcher struct {
	js       jetstream.JetStream
	streams  []jetstream.Stream
	subjects []string
	from     []uint64 // the first sequence of each stream to read
	msgs     chan jetstream.Msg
	// lost has a value when the connection came back or a consumer
	// reported an error: records may have been stored meanwhile.
	lost    chan struct{}
	status  chan nats.Status
	done    chan struct{} // closed by stop, so a callback never blocks after it
	stopped bool
	stops   []func()
}

// watch reads subjects[i] of the results and dead-letter streams from
// their next sequence, or from the start when all is set. A start
// sequence rather than "new messages only" matters: an ordered consumer
// that has delivered nothing yet is recreated after a reconnect with the
// policy it was given, and "new" would then skip what was stored while it
// was down.
func watch(ctx context.Context, js jetstream.JetStream, o options, subjects []string, all bool) (*watcher, error) {
	done := make(chan struct{})
	w := &watcher{js: js, subjects: subjects, msgs: make(chan jetstream.Msg, 64), lost: make(chan struct{}, 1), done: done}
	if nc := js.Conn(); nc != nil {
		w.status = nc.StatusChanged(nats.CONNECTED)
		go func(status chan nats.Status) {
			for range status {
				w.signalLost()
			}
		}(w.status)
	}
	for i, stream := range []string{o.results, o.deadLetters} {
		st, err := js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			w.stop()
			return nil, fmt.Errorf("there is no stream %s to wait on: has the worker run (or worker provision)? %w", stream, err)
		}
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		from := uint64(1)
		if !all {
			from = st.CachedInfo().State.LastSeq + 1 // js.Stream has just read it
		}
		w.streams, w.from = append(w.streams, st), append(w.from, from)
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects:    subjects[i : i+1],
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       from,
			InactiveThreshold: inactive,
		})
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			select {
			case w.msgs <- m:
			case <-done:
			}
		}, jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) { w.signalLost() }))
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		w.stops = append(w.stops, cc.Stop)
	}
	return w, nil
}

func (w *watcher) signalLost() {
	select {
	case w.lost <- struct{}{}:
	default:
	}
}

// lookup reads the watched subjects from the watch's start, message by
// message, for the record whose Nats-Msg-Id is want; nil when it is not
// stored yet. Only records of one chat since the publish are read.
func (w *watcher) lookup(ctx context.Context, want string) (*jetstream.RawStreamMsg, error) {
	for i, st := range w.streams {
		seq := w.from[i]
		for range MaxStatusScan {
			m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(w.subjects[i]))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return nil, err
			}
			if m.Header.Get(jetstream.MsgIDHeader) == want {
				return m, nil
			}
			seq = m.Sequence + 1
		}
	}
	return nil, nil
}

func (w *watcher) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	close(w.done)
	if w.status != nil {
		w.js.Conn().RemoveStatusListener(w.status)
	}
	for _, stop := range w.stops {
		stop()
	}
	w.stops = nil
}
