package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/chatworker/worker/chat"
	ibackoff "github.com/chatworker/worker/internal/backoff"
)

// DefaultConcurrency is how many conversations are fetched at once when
// Exporter.Concurrency is 0. The client's rate limiter sets the pace; a few
// calls in flight only hide the latency.
const DefaultConcurrency = 4

// DefaultMaxAttempts is how many calls a page gets when
// Exporter.MaxAttempts is 0.
const DefaultMaxAttempts = 6

// ErrPartial is wrapped by the error of a run that went through every
// conversation but could not export some; Summary.Failed lists them. Their
// checkpoints did not move, so the next run tries them again.
var ErrPartial = errors.New("export: some conversations failed")

// Exporter exports conversations from the Chat API to a Sink.
type Exporter struct {
	Client      *chat.Client
	Sink        Sink
	Checkpoints Checkpoints // not needed by ExportChat
	// Concurrency is how many conversations are fetched at once
	// (default DefaultConcurrency).
	Concurrency int
	// CallOptions are added to every API call (for example credentials).
	CallOptions []chat.CallOption
	// MaxAttempts bounds the calls for one page when the API fails in a way
	// worth retrying (429, 5xx, network); default DefaultMaxAttempts.
	MaxAttempts int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Options select what a run exports.
type Options struct {
	// Since and Until, when set, bound the feed items exported by their
	// timestamps (Since inclusive, Until inclusive). They narrow a run; they
	// do not move the checkpoints back, so items before a conversation's
	// checkpoint are not exported again.
	Since, Until time.Time
	// Progress, when set, is called after each conversation, from one
	// goroutine at a time.
	Progress func(Progress)
}

// Progress is a run's state after a conversation is done.
type Progress struct {
	Total     int           // conversations listed
	Done      int           // exported, unchanged or failed
	Exported  int           // conversations with a new line
	Unchanged int           // nothing new since their checkpoint
	Failed    int           // could not be exported
	Messages  int           // items exported so far, by kind
	Notes     int           //
	Events    int           //
	Elapsed   time.Duration // since the run started
}

// Rate is conversations done per second.
func (p Progress) Rate() float64 { return float64(p.Done) / max(p.Elapsed.Seconds(), 1e-3) }

// ETA estimates the time left at the rate so far (0 when done or unknown).
func (p Progress) ETA() time.Duration {
	if p.Done == 0 || p.Done >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / p.Rate() * float64(time.Second))
}

// Failure is a conversation that could not be exported.
type Failure struct {
	ChatID string `json:"chat_id"`
	Error  string `json:"error"`
}

// Summary is what a run did.
type Summary struct {
	Location      string    `json:"location,omitempty"` // where this run's lines went
	Conversations int       `json:"conversations"`      // listed
	Exported      int       `json:"exported"`           // lines written
	Unchanged     int       `json:"unchanged"`
	Messages      int       `json:"messages"`
	Notes         int       `json:"notes"`
	Events        int       `json:"events"`
	Failed        []Failure `json:"failed"`
	// Interrupted is set when the run stopped before going through every
	// conversation; running again continues it.
	Interrupted bool          `json:"interrupted"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"duration_ns"`
}

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// outcome of one conversation.
type outcome struct {
	chatID  string
	line    *Line // nil: unchanged
	err     error
	fatal   bool // the sink or checkpoints failed: stop the run
	skipped bool // the run was stopped before this conversation finished
}

// Run exports every conversation with something new since its checkpoint.
// It returns ErrPartial (wrapped) when some conversations failed, the
// context's error when interrupted, and other errors when listing, the sink
// or the checkpoints failed; the summary is filled in every case.
func (e *Exporter) Run(ctx context.Context, opt Options) (Summary, error) {
	start := e.now()
	sum := Summary{Started: start.UTC(), Failed: []Failure{}}
	finish := func(err error) (Summary, error) {
		sum.Duration = e.now().Sub(start)
		return sum, err
	}
	if e.Sink == nil || e.Checkpoints == nil || e.Client == nil {
		return finish(errors.New("export: Exporter needs a Client, a Sink and Checkpoints"))
	}
	cursors, err := e.Checkpoints.Load(ctx)
	if err != nil {
		return finish(err)
	}
	chats, err := e.listAll(ctx, opt.Since, start)
	if err != nil {
		sum.Interrupted = ctx.Err() != nil
		e.Sink.Close()
		return finish(err)
	}
	sum.Conversations = len(chats)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan *chat.Chat)
	results := make(chan outcome)
	var wg sync.WaitGroup
	n := e.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	for range n {
		wg.Go(func() {
			for c := range work {
				var cp *Cursor
				if v, ok := cursors[c.ID]; ok {
					cp = &v
				}
				results <- e.exportOne(runCtx, c, cp, opt)
			}
		})
	}
	go func() {
		defer close(work)
		for _, c := range chats {
			select {
			case work <- c:
			case <-runCtx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	var p Progress
	p.Total = len(chats)
	var fatal error
	for r := range results {
		switch {
		case r.skipped:
			continue
		case r.fatal:
			if fatal == nil {
				fatal = r.err
				stop()
			}
			continue
		case r.err != nil:
			p.Failed++
			sum.Failed = append(sum.Failed, Failure{ChatID: r.chatID, Error: r.err.Error()})
		case r.line == nil:
			p.Unchanged++
		default:
			p.Exported++
			p.Messages += len(r.line.Messages)
			p.Notes += len(r.line.Notes)
			p.Events += len(r.line.Events)
		}
		p.Done++
		p.Elapsed = e.now().Sub(start)
		if opt.Progress != nil {
			opt.Progress(p)
		}
	}
	sum.Exported, sum.Unchanged, sum.Messages, sum.Notes, sum.Events = p.Exported, p.Unchanged, p.Messages, p.Notes, p.Events
	sort.Slice(sum.Failed, func(i, j int) bool { return sum.Failed[i].ChatID < sum.Failed[j].ChatID })

	if fatal != nil || ctx.Err() != nil {
		sum.Interrupted = true
		flushErr := e.Checkpoints.Flush(context.WithoutCancel(ctx))
		closeErr := e.Sink.Close()
		if fatal == nil {
			fatal = ctx.Err()
		}
		return finish(errors.Join(fatal, flushErr, closeErr))
	}
	loc, err := e.Sink.Finish(ctx)
	if err == nil {
		err = e.Checkpoints.Flush(ctx)
	}
	e.Sink.Close()
	sum.Location = loc
	if err != nil {
		return finish(err)
	}
	if len(sum.Failed) > 0 {
		return finish(fmt.Errorf("%w: %d of %d; run the export again to retry them", ErrPartial, len(sum.Failed), sum.Conversations))
	}
	return finish(nil)
}

// listAll lists every conversation with activity since since. Pages are
// taken by offset, most recent activity first, so a conversation that gets
// activity while the list is read can move from a page not yet read to one
// already read; a second listing of what was active since the first began
// catches those.
func (e *Exporter) listAll(ctx context.Context, since, start time.Time) ([]*chat.Chat, error) {
	seen := map[string]bool{}
	var out []*chat.Chat
	opts := e.callOptions()
	list := func(from time.Time) error {
		for c, err := range e.Client.AllChats(ctx, chat.ListOptions{Count: chat.MaxPageSize, From: from}, opts...) {
			if err != nil {
				return fmt.Errorf("listing conversations: %w", err)
			}
			if c.ID != "" && !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, &c)
			}
		}
		return nil
	}
	if err := list(since); err != nil {
		return nil, err
	}
	// A minute of slack for the difference between our clock and the API's.
	catchUp := start.Add(-time.Minute)
	if catchUp.Before(since) {
		catchUp = since
	}
	if err := list(catchUp); err != nil {
		return nil, err
	}
	return out, nil
}

// activity is the time of a conversation's latest activity, if known.
func activity(c *chat.Chat) (int64, bool) {
	var ts int64
	known := false
	if c.Latest != nil && c.Latest.Timestamp > 0 {
		ts, known = c.Latest.Timestamp, true
	}
	if c.Archived != nil && *c.Archived > ts {
		ts, known = *c.Archived, true
	}
	return ts, known
}

func (e *Exporter) exportOne(ctx context.Context, c *chat.Chat, cp *Cursor, opt Options) outcome {
	out := outcome{chatID: c.ID}
	if ctx.Err() != nil {
		out.skipped = true
		return out
	}
	if cp != nil {
		if ts, ok := activity(c); ok && ts <= cp.TS {
			return out // nothing since the checkpoint: no call
		}
		if !opt.Until.IsZero() && cp.TS > opt.Until.UnixMilli() {
			return out
		}
	}
	from := opt.Since
	if cp != nil && cp.TS > from.UnixMilli() {
		from = time.UnixMilli(cp.TS)
	}
	items, err := e.feed(ctx, c.ID, from, opt.Until, cp, e.callOptions())
	if err != nil {
		if ctx.Err() != nil {
			out.skipped = true
			return out
		}
		out.err = err
		return out
	}
	if len(items) == 0 {
		return out
	}
	l := newLine(c, cp, items, e.now())
	data, err := json.Marshal(l)
	if err != nil {
		out.err = err
		return out
	}
	// Past this point the line may be stored, so the run's cancellation
	// must not leave it stored without its checkpoint if that can be
	// helped: both get their own short deadline instead.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := e.Sink.Put(wctx, l, data); err != nil {
		out.err, out.fatal = err, true
		return out
	}
	if err := e.Checkpoints.Save(wctx, c.ID, l.Through); err != nil {
		out.err, out.fatal = err, true
		return out
	}
	out.line = l
	return out
}

// feed returns the conversation's items from from to until (zero: open)
// that cp does not cover, each once.
func (e *Exporter) feed(ctx context.Context, chatID string, from, until time.Time, cp *Cursor, opts []chat.CallOption) ([]chat.FeedItem, error) {
	seen := map[string]bool{}
	var items []chat.FeedItem
	for it, err := range e.Client.AllFeed(ctx, chatID, chat.ListOptions{Count: chat.MaxPageSize, From: from, To: until}, opts...) {
		if err != nil {
			return nil, err
		}
		// Pages are by offset, newest first: an item arriving meanwhile
		// shifts the rest by one, so an item can come twice, never not.
		if seen[it.ID] || cp.covers(it.Timestamp, it.ID) {
			continue
		}
		if it.ID != "" {
			seen[it.ID] = true
		}
		items = append(items, it)
	}
	return items, nil
}

// callOptions are the options of every call of a run: e.CallOptions, then
// the retry of each page (all of them reads, safe to repeat): up to
// MaxAttempts calls, with jittered exponential waits, never shorter than
// the API's Retry-After, and only for failures worth retrying (429, 5xx,
// network). A failure that blames the configuration is not retried.
func (e *Exporter) callOptions(extra ...chat.CallOption) []chat.CallOption {
	attempts := e.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	retry := chat.WithRetry(func() backoff.BackOff {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = 200*time.Millisecond, 10*time.Second
		return ibackoff.Limit(b, attempts-1)
	})
	opts := make([]chat.CallOption, 0, len(e.CallOptions)+len(extra)+1)
	opts = append(append(opts, e.CallOptions...), extra...)
	return append(opts, retry)
}

// ChatExport is the result of exporting one conversation on demand: where it
// went and what it held. It is the response of the queue's export command.
type ChatExport struct {
	Location string  `json:"location"`
	ChatID   string  `json:"chat_id"`
	Messages int     `json:"messages"`
	Notes    int     `json:"notes"`
	Events   int     `json:"events"`
	Through  *Cursor `json:"through,omitempty"` // the last item exported
}

// Export exports one whole conversation, from its first item, to the sink's
// requests area. It does not read or move checkpoints, so it neither
// depends on nor disturbs the runs. Exporting an unchanged conversation again
// replaces the same file or object. project, when set, is the name of a v2
// command's project: the export goes to that project's part of the requests
// area, so one chat ID in two projects is two exports.
func (e *Exporter) Export(ctx context.Context, project, chatID string, opts ...chat.CallOption) (ChatExport, error) {
	if e.Sink == nil || e.Client == nil {
		return ChatExport{}, errors.New("export: Exporter needs a Client and a Sink")
	}
	callOpts := e.callOptions(opts...)
	c, _, err := e.Client.GetChat(ctx, chatID, callOpts...)
	if err != nil {
		return ChatExport{}, err
	}
	if c.ID == "" {
		c.ID = chatID
	}
	items, err := e.feed(ctx, chatID, time.Time{}, time.Time{}, nil, callOpts)
	if err != nil {
		return ChatExport{}, err
	}
	var l *Line
	if len(items) == 0 {
		l = &Line{ChatID: chatID, Chat: c, ExportedAt: e.now().UTC(), Messages: []json.RawMessage{}, Notes: []json.RawMessage{}, Events: []json.RawMessage{}}
	} else {
		l = newLine(c, nil, items, e.now())
	}
	l.Project = project
	data, err := json.Marshal(l)
	if err != nil {
		return ChatExport{}, err
	}
	loc, err := e.Sink.PutRequest(ctx, l, data)
	if err != nil {
		return ChatExport{}, err
	}
	r := ChatExport{Location: loc, ChatID: chatID, Messages: len(l.Messages), Notes: len(l.Notes), Events: len(l.Events)}
	if len(items) > 0 {
		r.Through = &l.Through
	}
	return r, nil
}

// ExportChat is Export for the queue's export command: its JSON result
// ({"location": ..., "messages": n, ...}) is the command result's response.
// API errors keep their chat package classification (errors.Is with
// chat.ErrPermanent or chat.ErrRetryable); sink errors are unclassified.
func (e *Exporter) ExportChat(ctx context.Context, project, chatID string, opts ...chat.CallOption) (json.RawMessage, error) {
	r, err := e.Export(ctx, project, chatID, opts...)
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}
