package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
// message at or after a sequence on <prefix>.commands.*.<chat token> (see
// isHead for which replica may answer it).
//
// Inside one worker, a lane per chat runs that chat's commands one after
// another, so commands that arrive together wait in memory rather than
// going back to the stream.

// lane is the commands of one chat held by this worker, oldest first.
type lane struct {
	token string
	queue []jetstream.Msg
	// settled is the stream sequence of this chat's last command that this
	// worker acknowledged or dead-lettered: no older command of the chat
	// can still be in the stream, so the head search starts after it.
	settled uint64
}

type lanes struct {
	mu     sync.Mutex
	byChat map[string]*lane
	// recent remembers settled sequences of chats whose lane emptied, so a
	// command arriving right after its predecessor's ack does not mistake
	// the not-yet-removed predecessor for a head. Reset when large: it is
	// only an optimisation.
	recent map[string]uint64
}

func newLanes() *lanes {
	return &lanes{byChat: map[string]*lane{}, recent: map[string]uint64{}}
}

// add queues msg behind its chat's commands in this worker. It returns a
// new lane that the caller must run, or nil when the chat already has one.
// Lanes need no bound of their own: the consumer's MaxAckPending bounds
// the commands a worker holds.
func (ls *lanes) add(token string, msg jetstream.Msg) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.byChat[token]; l != nil {
		l.queue = append(l.queue, msg)
		return nil
	}
	l := &lane{token: token, queue: []jetstream.Msg{msg}, settled: ls.recent[token]}
	delete(ls.recent, token)
	ls.byChat[token] = l
	return l
}

// next takes the lane's oldest command, or removes the empty lane.
func (ls *lanes) next(l *lane) (jetstream.Msg, uint64, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(l.queue) == 0 {
		delete(ls.byChat, l.token)
		if l.settled > 0 {
			if len(ls.recent) >= 1<<14 {
				clear(ls.recent)
			}
			ls.recent[l.token] = l.settled
		}
		return nil, 0, false
	}
	msg := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return msg, l.settled, true
}

func (ls *lanes) markSettled(l *lane, seq uint64) {
	ls.mu.Lock()
	l.settled = max(l.settled, seq)
	ls.mu.Unlock()
}

// takeAll empties the lane's queue.
func (ls *lanes) takeAll(l *lane) []jetstream.Msg {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	q := l.queue
	l.queue = nil
	return q
}

// each calls f for every queued command (for keep-alives).
func (ls *lanes) each(f func(jetstream.Msg)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.byChat {
		for _, m := range l.queue {
			f(m)
		}
	}
}

// runLane executes a chat's commands in order until its lane is empty.
func (w *Worker) runLane(ctx context.Context, l *lane) {
	for {
		msg, settled, ok := w.lanes.next(l)
		if !ok {
			return
		}
		if w.draining.Load() {
			w.handBack(msg)
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			w.Handle(ctx, msg) // dead-letters or hands back; no order to keep
			continue
		}
		head, err := w.isHead(ctx, l.token, settled+1, meta.Sequence.Stream)
		if err != nil {
			w.log.Warn("checking the chat's order failed: trying again later", zap.String("chat", l.token), zap.Error(err))
		}
		if !head {
			// An earlier command of this chat is still in the stream: this
			// one and everything behind it wait.
			w.m.orderWait()
			delay := orderDelay(meta.NumDelivered)
			w.nakMsg(msg, delay)
			for _, m := range w.lanes.takeAll(l) {
				w.nakMsg(m, delay)
			}
			continue
		}
		if w.handle(ctx, msg, meta) {
			w.lanes.markSettled(l, meta.Sequence.Stream)
		}
	}
}

// isHead reports whether the command at seq is the oldest command of its
// chat in the stream, searching from sequence from on.
//
// It first asks with a direct get, which any replica may answer. A replica
// stores commands in stream order and drops one only once its
// acknowledgement is committed, so when it finds this command, or an older
// one, its answer is exact. A replica that finds neither has not stored
// this command yet (it lags the leader), and would miss an older one too:
// then the stream leader answers. (The system test on a three-node cluster
// caught a version that trusted any replica.)
func (w *Worker) isHead(ctx context.Context, token string, from, seq uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	filter := w.cfg.Topology.Subjects.ChatCommandsFilter(token)
	first, err := w.commands.GetMsg(ctx, from, jetstream.WithGetMsgSubject(filter))
	switch {
	case err == nil && first.Sequence <= seq:
		return first.Sequence == seq, nil
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		return false, err
	}
	return w.leaderIsHead(ctx, filter, from, seq)
}

// leaderIsHead is isHead asked of the stream leader, through the JetStream
// API's message get (nats.go would use a direct get on this stream).
func (w *Worker) leaderIsHead(ctx context.Context, filter string, from, seq uint64) (bool, error) {
	req, err := json.Marshal(struct {
		Seq        uint64 `json:"seq"`
		NextBySubj string `json:"next_by_subj"`
	}{from, filter})
	if err != nil {
		return false, err
	}
	resp, err := w.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+w.cfg.Topology.CommandsStream, req)
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

// orderDelay is how long a command waits behind an earlier command of its
// chat held elsewhere: short at first (the earlier one is usually about to
// finish), growing to a second.
func orderDelay(delivered uint64) time.Duration {
	ceiling := 20 * time.Millisecond << min(delivered, 6)
	ceiling = min(ceiling, time.Second)
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)))
}

// keepQueuedAlive tells JetStream that commands waiting in lanes are being
// worked on, so they are not redelivered to another worker meanwhile.
func (w *Worker) keepQueuedAlive(ctx context.Context) {
	t := time.NewTicker(w.cfg.Topology.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.lanes.each(func(m jetstream.Msg) { _ = m.InProgress() })
		}
	}
}
