package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatworker/worker/internal/backoff"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Per-chat order
//
// Commands for one chat must reach the API in the order they were
// published, on any number of workers, while other chats run in parallel.
// The rule that gives this needs no partitions and no coordination between
// workers: the commands stream is a work queue, so a command leaves it only
// when it is acknowledged or dead-lettered, and a command is executed only
// when it is the oldest command of its chat still in the stream (its chat's
// head). An earlier command that is running elsewhere, waiting for a retry,
// or stranded on a crashed worker holds back the later ones until it is
// settled; a dead letter releases its chat. The check is one get: the first
// message at or after a sequence on <prefix>.commands.[<project>.]*.<chat token> (see
// isHead for which replica may answer it).
//
// Inside one worker, a lane per chat runs that chat's commands one after
// another, oldest first, so commands that arrive together wait in memory
// rather than going back to the stream; with Config.ClaimAhead the lane
// checks and claims its next command while the one before it is being
// stored (ahead.go). When the earlier command is held by another worker,
// the lane waits in place for it to leave the stream, for a bounded time
// (wait.go), and hands its commands back only when that runs out.
//
// Most checks can be skipped, because the consumer numbers its deliveries
// (the consumer sequence, one per delivery, redeliveries included) and
// hands out first deliveries in stream order. Say this worker settled P,
// a command of chat X that it found to be the head, and now holds M, a
// later command of X. If P and M were both first deliveries and this
// worker received every delivery numbered between them, then every command
// published between P and M came to this worker, into X's lane ahead of M
// if it was X's; none of them can be held elsewhere. If none of them went
// back to the stream either (the lane forgets P when anything of X is
// handed back), M is X's head. So a worker checks the first command of a
// chat it sees, and again only after a gap in its deliveries (another
// worker took one), a redelivery, or a hand-back. That helps a lone
// worker; with several pulling, the server hands deliveries to their pull
// requests in turn, so nearly every command is checked.

// queued is a command waiting in a lane.
type queued struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata // nil if the message has none (it is dead-lettered)
	run  uint64                 // the delivery run it arrived in (see deliveryRuns)
}

// deliveryRuns numbers the unbroken runs of consumer sequences one worker
// receives: a delivery starts a new run unless it directly follows the
// previous one. Only the consume loop uses it.
type deliveryRuns struct{ id, last uint64 }

func (r *deliveryRuns) observe(consumerSeq uint64) uint64 {
	if consumerSeq != r.last+1 {
		r.id++
	}
	r.last = consumerSeq
	return r.id
}

// headProof records the last command of a chat that this worker found to
// be the chat's head, received as a first delivery and settled; the zero
// value proves nothing.
type headProof struct {
	ok          bool
	run         uint64
	consumerSeq uint64
}

func proofOf(q queued) headProof {
	if q.meta == nil || q.meta.NumDelivered != 1 {
		return headProof{}
	}
	return headProof{ok: true, run: q.run, consumerSeq: q.meta.Sequence.Consumer}
}

// covers reports whether q is its chat's head without asking the stream
// (see "Per-chat order" above).
func (p headProof) covers(q queued) bool {
	return p.ok && q.meta != nil && q.meta.NumDelivered == 1 && q.run == p.run && q.meta.Sequence.Consumer > p.consumerSeq
}

// lane is the commands of one chat held by this worker, oldest first.
type lane struct {
	// chat is the filter of the chat's commands in the stream
	// (Subjects.ChatCommandsFilter of its project, or of v1 subjects): it
	// names the lane and finds the chat's head.
	chat  string
	queue []queued
	chatState
}

// chatState is what a worker knows about a chat between its commands.
type chatState struct {
	// settled is the stream sequence of this chat's last command that this
	// worker acknowledged or dead-lettered: no older command of the chat
	// can still be in the stream, so the head search starts after it.
	settled uint64
	proof   headProof
}

type lanes struct {
	mu     sync.Mutex
	byChat map[string]*lane
	// recent remembers the state of chats whose lane emptied: the settled
	// sequence, so a command arriving right after its predecessor's ack
	// does not mistake the not-yet-removed predecessor for a head, and the
	// head proof. Reset when large: it is only an optimisation.
	recent map[string]chatState
}

func newLanes() *lanes {
	return &lanes{byChat: map[string]*lane{}, recent: map[string]chatState{}}
}

// add queues msg among its chat's commands in this worker, by stream
// sequence. It returns a new lane that the caller must run, or nil when the
// chat already has one. Lanes need no bound of their own: the consumer's
// MaxAckPending bounds the commands a worker holds.
//
// First deliveries arrive in stream order, so they are appended; only a
// redelivery (a command handed back, or one a crashed worker held) can
// arrive after a later command of its chat, and it goes ahead of it, so
// that the lane never waits on a command queued behind its own head. The
// head proof is unaffected: it asks that every command published between
// its two commands be ahead of the second in the lane, which sorting keeps.
func (ls *lanes) add(token string, q queued) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.byChat[token]; l != nil {
		l.insert(q)
		return nil
	}
	l := &lane{chat: token, queue: []queued{q}, chatState: ls.recent[token]}
	delete(ls.recent, token)
	ls.byChat[token] = l
	return l
}

// insert queues q by stream sequence; a command without metadata goes last.
func (l *lane) insert(q queued) {
	i := len(l.queue)
	if q.meta != nil {
		for i > 0 && l.queue[i-1].meta != nil && l.queue[i-1].meta.Sequence.Stream > q.meta.Sequence.Stream {
			i--
		}
	}
	l.queue = slices.Insert(l.queue, i, q)
}

// requeue puts back a command its runner took, because an older command of
// its chat arrived meanwhile (see add).
func (ls *lanes) requeue(l *lane, q queued) {
	ls.mu.Lock()
	l.insert(q)
	ls.mu.Unlock()
}

// olderQueued reports whether the lane holds a command of its chat older
// than the stream sequence seq.
func (ls *lanes) olderQueued(l *lane, seq uint64) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(l.queue) > 0 && l.queue[0].meta != nil && l.queue[0].meta.Sequence.Stream < seq
}

// next takes the lane's oldest command, or removes the empty lane.
func (ls *lanes) next(l *lane) (queued, chatState, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(l.queue) == 0 {
		delete(ls.byChat, l.chat)
		if l.settled > 0 || l.proof.ok {
			if len(ls.recent) >= 1<<14 {
				clear(ls.recent)
			}
			ls.recent[l.chat] = l.chatState
		}
		return queued{}, chatState{}, false
	}
	q := l.queue[0]
	l.queue[0] = queued{}
	l.queue = l.queue[1:]
	return q, l.chatState, true
}

// peek returns the lane's oldest command without taking it: only the
// lane's runner takes commands, so next returns the same one.
func (ls *lanes) peek(l *lane) (queued, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(l.queue) == 0 {
		return queued{}, false
	}
	return l.queue[0], true
}

// settledHead records that the lane's head command left the stream.
func (ls *lanes) settledHead(l *lane, q queued) {
	ls.mu.Lock()
	l.settled = max(l.settled, q.meta.Sequence.Stream)
	l.proof = proofOf(q)
	ls.mu.Unlock()
}

// forget drops the lane's head proof: a command of its chat went back to
// the stream.
func (ls *lanes) forget(l *lane) {
	ls.mu.Lock()
	l.proof = headProof{}
	ls.mu.Unlock()
}

// takeAll empties the lane's queue; the caller hands the commands back.
func (ls *lanes) takeAll(l *lane) []jetstream.Msg {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	msgs := make([]jetstream.Msg, len(l.queue))
	for i, q := range l.queue {
		msgs[i] = q.msg
	}
	l.queue = nil
	l.proof = headProof{}
	return msgs
}

// queuedMsgs appends every queued command to buf (for keep-alives), so
// that they are told about outside the lock every dispatch takes.
func (ls *lanes) queuedMsgs(buf []jetstream.Msg) []jetstream.Msg {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.byChat {
		for _, q := range l.queue {
			buf = append(buf, q.msg)
		}
	}
	return buf
}

// runLane executes a chat's commands in order until its lane is empty.
func (w *Worker) runLane(ctx context.Context, l *lane) {
	var next *ahead // the next command, made ready while the one before it was stored (ahead.go)
	for {
		q, state, ok := w.lanes.next(l)
		if !ok {
			return
		}
		a := next
		next = nil
		if a != nil {
			a.wait()
		}
		if w.Draining() {
			w.lanes.forget(l)
			if a != nil {
				w.exec.releaseAhead(ctx, a.claim)
				endOutcome(a.span, outcomeHandedBack)
			}
			w.done.handBack(q.msg, 0, nil)
			continue
		}
		if q.meta == nil {
			w.lanes.forget(l)
			w.handle(ctx, q.msg, nil) // dead-letters or hands back; no order to keep
			continue
		}
		cmdCtx, span, head, claim := w.takeUp(ctx, l, state, q, a)
		if !head {
			// An earlier command of this chat is still in the stream: wait
			// in place for it to leave (wait.go).
			switch w.order.waitForHead(cmdCtx, l, state, q) {
			case becameHead:
				head = true
			case olderArrived:
				w.lanes.requeue(l, q)
				endOutcome(span, outcomeRequeued)
				continue
			}
		}
		if !head {
			// The wait ran out, or the worker is draining: this one and
			// everything behind it go back to the stream.
			w.m.orderWait()
			delay := orderDelay(q.meta.NumDelivered)
			w.done.handBack(q.msg, delay, nil)
			for _, m := range w.lanes.takeAll(l) {
				w.done.handBack(m, delay, nil)
			}
			endOutcome(span, outcomeWaiting)
			continue
		}
		var settling func()
		if w.cfg.ClaimAhead {
			settling = func() { next = w.prepare(ctx, l, q, state) }
		}
		if w.handleIn(cmdCtx, span, q.msg, q.meta, true, claim, settling) {
			w.lanes.settledHead(l, q)
		} else {
			w.lanes.forget(l)
			if next != nil {
				next.stale = true
			}
		}
	}
}

// takeUp starts the delivery of q, its lane's oldest command: its span, and
// whether it is its chat's head. a is q's chat's next command as made
// ready while the one before it was stored (nil if none): when it is still
// q and still right, its span, check and claim are q's; otherwise its
// claim is released and q is checked afresh.
func (w *Worker) takeUp(ctx context.Context, l *lane, state chatState, q queued, a *ahead) (cmdCtx context.Context, span trace.Span, head bool, claim *claimed) {
	switch {
	case a == nil:
		// The delivery's span starts here, so that it holds the order check.
		cmdCtx, span = w.tr.command(ctx, q.msg.Subject(), q.msg.Headers())
		head = w.order.checkHead(cmdCtx, l.chat, state, q)
	case a.q.msg != q.msg:
		// An older command of the chat arrived in the lane after a was
		// made ready; a is still queued, behind it.
		w.exec.releaseAhead(ctx, a.claim)
		endOutcome(a.span, outcomeRequeued)
		cmdCtx, span = w.tr.command(ctx, q.msg.Subject(), q.msg.Headers())
		head = w.order.checkHead(cmdCtx, l.chat, state, q)
	case a.stale:
		w.exec.releaseAhead(ctx, a.claim)
		cmdCtx, span = a.ctx, a.span
		head = w.order.checkHead(cmdCtx, l.chat, state, q)
	default:
		cmdCtx, span, head, claim = a.ctx, a.span, a.head, a.claim
	}
	return cmdCtx, span, head, claim
}

// orderer answers whether a command is its chat's head (see "Per-chat
// order" above), waits in place for it to become the head (wait.go), and
// keeps the commands waiting in lanes alive.
type orderer struct {
	js       jetstream.JetStream
	topo     Topology
	lanes    *lanes
	commands jetstream.Stream // set by open
	m        *Metrics
	log      *zap.Logger
	tr       tracer
	// waitMax bounds a lane's wait in place for its command to become its
	// chat's head; waiting counts the lanes waiting, at most concurrency.
	waitMax     time.Duration
	waiting     atomic.Int64
	concurrency int
	stopping    <-chan struct{} // closed when the worker begins to drain
	alive       continuity      // the keep-alive's rounds (awake)
}

// open finds the commands stream that the checks read.
func (o *orderer) open(ctx context.Context) error {
	var err error
	if o.commands, err = o.js.Stream(ctx, o.topo.CommandsStream); err != nil {
		return fmt.Errorf("stream %s: %w", o.topo.CommandsStream, err)
	}
	return nil
}

// checkHead reports whether q is its chat's head, by the lane's proof or by
// asking the stream (searching from after state.settled); it says no when
// it cannot tell.
func (o *orderer) checkHead(ctx context.Context, chat string, state chatState, q queued) bool {
	head := state.proof.covers(q)
	o.m.orderCheck(head)
	if head {
		return true
	}
	checkCtx, check := o.tr.start(ctx, "order check", trace.SpanKindInternal)
	head, err := o.isHead(checkCtx, chat, state.settled+1, q.meta.Sequence.Stream)
	if err != nil {
		o.log.Warn("checking the chat's order failed: trying again later", zap.String("chat", chat), zap.Error(err))
	}
	if check.IsRecording() {
		check.SetAttributes(attribute.Bool("chatworker.order.head", head))
	}
	endWith(check, err)
	return head
}

// isHead reports whether the command at seq is the oldest command of its
// chat in the stream, searching from sequence from on.
//
// It first asks with a direct get, which any replica may answer. A replica
// stores commands in stream order and drops one only once its
// acknowledgement is committed, so when it finds this command, or an older
// one, its answer is exact. A replica that finds neither has not stored
// this command yet (it lags the leader), and would miss an older one too:
// then the stream leader answers (test/system checks per-chat order on a
// three-node cluster).
func (o *orderer) isHead(ctx context.Context, filter string, from, seq uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	first, err := o.commands.GetMsg(ctx, from, jetstream.WithGetMsgSubject(filter))
	switch {
	case err == nil && first.Sequence <= seq:
		return first.Sequence == seq, nil
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		return false, err
	}
	return o.leaderIsHead(ctx, filter, from, seq)
}

// leaderIsHead is isHead asked of the stream leader, through the JetStream
// API's message get (nats.go would use a direct get on this stream).
func (o *orderer) leaderIsHead(ctx context.Context, filter string, from, seq uint64) (bool, error) {
	req, err := json.Marshal(struct {
		Seq        uint64 `json:"seq"`
		NextBySubj string `json:"next_by_subj"`
	}{from, filter})
	if err != nil {
		return false, err
	}
	resp, err := o.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+o.topo.CommandsStream, req)
	if err != nil {
		return false, fmt.Errorf("ask the stream leader: %w", err)
	}
	var r struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return false, fmt.Errorf("ask the stream leader: %w", err)
	}
	switch {
	case r.Error != nil && r.Error.Code == 404:
		// Not even this command is there (it aged out of the stream):
		// nothing older can be either.
		return true, nil
	case r.Error != nil:
		return false, fmt.Errorf("ask the stream leader: %w", r.Error)
	case r.Message == nil:
		return false, errors.New("ask the stream leader: empty answer")
	}
	return r.Message.Seq >= seq, nil
}

// orderDelay is how long a command handed back waits behind an earlier
// command of its chat held elsewhere, once its wait in place ran out:
// short at first, growing to a second.
func orderDelay(delivered uint64) time.Duration {
	return backoff.Exponential{Initial: 20 * time.Millisecond, Max: time.Second}.Equal(int(min(delivered, 7)) + 1)
}

// keepQueuedAlive tells JetStream that commands waiting in lanes are being
// worked on, so they are not redelivered to another worker meanwhile, until
// ctx is done. Its rounds also tell whether the worker has run without a
// stall (awake).
func (o *orderer) keepQueuedAlive(ctx context.Context) {
	o.alive.round(time.Now(), o.topo.AckWait)
	var msgs []jetstream.Msg
	tick(ctx, o.topo.AckWait/3, func() {
		o.alive.round(time.Now(), o.topo.AckWait)
		msgs = o.keepQueuedAliveOnce(msgs[:0])
	})
}

// awake reports whether the commands this worker holds can still be its
// alone: the keep-alive's rounds came on time, with no stall in the last
// AckWait. A worker that stalled past AckWait (stopped, starved of CPU)
// may hold deliveries that JetStream has since given to another worker:
// their first delivery must claim (see "First deliveries" in handle.go).
func (o *orderer) awake() bool { return o.alive.awake(time.Now(), o.topo.AckWait) }

// continuity follows the keep-alive's rounds, one every third of AckWait.
// A round later than half AckWait after the one before means the worker
// stalled: the commands it held may have been redelivered meanwhile.
type continuity struct {
	mu    sync.Mutex
	last  time.Time // the last round
	stall time.Time // the last round that came late; zero if none
}

func (c *continuity) round(now time.Time, ackWait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.IsZero() && now.Sub(c.last) > ackWait/2 {
		c.stall = now
	}
	c.last = now
}

// awake: the last round is recent, and no stall in the last AckWait (the
// deliveries a stalled worker still holds, queued or buffered, are handed
// out by then).
func (c *continuity) awake(now time.Time, ackWait time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.last.IsZero() && now.Sub(c.last) <= ackWait/2 && (c.stall.IsZero() || now.Sub(c.stall) > ackWait)
}

// keepQueuedAliveOnce tells JetStream once about every queued command; buf
// is reused between rounds.
func (o *orderer) keepQueuedAliveOnce(buf []jetstream.Msg) []jetstream.Msg {
	buf = o.lanes.queuedMsgs(buf)
	for i, m := range buf {
		_ = m.InProgress()
		buf[i] = nil
	}
	return buf
}
