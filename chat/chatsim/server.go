package chatsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Effect is one applied change: a message sent, a note left or a chat archived.
type Effect struct {
	Seq            int64     `json:"seq"`
	Op             string    `json:"op"` // "send", "note", "archive"
	ChatID         string    `json:"chat_id"`
	Content        string    `json:"content,omitempty"`
	From           string    `json:"from,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	At             time.Time `json:"at"`
	Path           string    `json:"path"` // escaped path as received
}

// Stats counts what the simulator saw.
type Stats struct {
	Requests          int64         `json:"requests"`
	ByStatus          map[int]int64 `json:"by_status"`
	Effects           int64         `json:"effects"`
	RateLimited       int64         `json:"rate_limited"`
	IdempotentReplays int64         `json:"idempotent_replays"`
	Errors            int64         `json:"errors"`    // injected 5xx
	Dropped           int64         `json:"dropped"`   // injected drops
	Hung              int64         `json:"hung"`      // injected hangs
	Truncated         int64         `json:"truncated"` // injected truncations
}

// Server simulates the API; it is an http.Handler serving the API both at
// "/" and under "/chat/v1", plus inspection endpoints under "/_sim/".
type Server struct {
	cfg      Config
	perSec   float64        // refill rate
	limitHdr string         // X-RateLimit-Limit (units per real minute)
	mux      *http.ServeMux // inspection endpoints
	routes   map[string]http.HandlerFunc
	faults   atomic.Pointer[Faults]
	quirks   atomic.Pointer[Quirks]
	honour   atomic.Bool

	rngMu sync.Mutex
	rng   *rand.Rand

	rateMu  sync.Mutex
	buckets map[string]*bucket

	mu      sync.Mutex
	chats   map[string]*chatState
	effects []Effect
	ledger  map[string]reply // api key + "\x00" + Idempotency-Key
	lastTS  int64
	stats   Stats
}

type bucket struct {
	tokens float64
	last   time.Time
}

type chatState struct {
	id       string
	archived *int64
	feed     []*item // oldest first
	latest   *item   // latest message
	activity int64   // ms of latest activity
}

// item is a feed entry: a message (Type "message") or an event (Type "event").
type item struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Event     string          `json:"event,omitempty"`
	From      string          `json:"from,omitempty"`
	Content   string          `json:"content,omitempty"`
	Timestamp int64           `json:"timestamp"`
	PersonID  string          `json:"person_id"`
	Private   bool            `json:"private"`
	Entities  []any           `json:"entities"`
	Data      json.RawMessage `json:"data"`
}

type reply struct {
	status int
	body   []byte
}

var emptyObject = json.RawMessage("{}")

// New returns a simulator configured by cfg.
func New(cfg Config) *Server {
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.NotFoundPrefix == "" {
		cfg.NotFoundPrefix = "missing:"
	}
	s := &Server{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
		buckets: map[string]*bucket{},
		chats:   map[string]*chatState{},
		ledger:  map[string]reply{},
		stats:   Stats{ByStatus: map[int]int64{}},
	}
	if cfg.RatePerMinute > 0 {
		s.perSec = float64(cfg.RatePerMinute) / cfg.RateWindow.Seconds()
		s.limitHdr = strconv.Itoa(int(math.Round(s.perSec * 60)))
	}
	f := cfg.Faults
	s.faults.Store(&f)
	q := cfg.Quirks
	s.quirks.Store(&q)
	s.honour.Store(cfg.HonourIdempotencyKey)

	s.routes = map[string]http.HandlerFunc{
		"POST messages": s.api("send", s.send),
		"POST notes":    s.api("note", s.note),
		"POST archive":  s.api("archive", s.archive),
		"GET list":      s.api("list_chats", s.listChats),
		"GET chat":      s.api("get_chat", s.getChat),
		"GET feed":      s.api("feed", s.feed),
		"GET messages":  s.api("messages", s.messages),
	}
	s.mux = http.NewServeMux()
	for _, prefix := range []string{"", "/chat/v1"} {
		s.mux.HandleFunc("GET "+prefix+"/_sim/effects", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Effects()) })
		s.mux.HandleFunc("GET "+prefix+"/_sim/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
		s.mux.HandleFunc("POST "+prefix+"/_sim/reset", func(w http.ResponseWriter, r *http.Request) { s.Reset(); writeJSON(w, 200, emptyObject) })
		s.mux.HandleFunc("POST "+prefix+"/_sim/faults", s.postFaults)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.rateHeaders(w, r.URL.Query().Get("api_key"))
		s.write(w, reply{404, errBody(4004, "no such endpoint")})
	})
	return s
}

// ServeHTTP implements http.Handler. API paths are routed on the escaped
// path, segment by segment, rather than by http.ServeMux: the mux cleans
// paths and redirects, so a chat ID such as "/" (escaped "%2F") or one that
// unescapes to "..", would not reach its chat.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(p, "/chat/v1/"); ok {
		p = "/" + rest
	}
	rest, ok := strings.CutPrefix(p, "/chats")
	if !ok || (rest != "" && rest[0] != '/') {
		s.mux.ServeHTTP(w, r)
		return
	}
	var route string
	switch segs := strings.Split(rest, "/"); {
	case rest == "":
		route = "list"
	case len(segs) == 2:
		route = "chat"
	case len(segs) == 3 && (segs[2] == "messages" || segs[2] == "notes" || segs[2] == "archive" || segs[2] == "feed"):
		route = segs[2]
	default:
		s.rateHeaders(w, r.URL.Query().Get("api_key"))
		s.write(w, reply{404, errBody(4004, "no such endpoint")})
		return
	}
	if route != "list" {
		seg := strings.Split(rest, "/")[1]
		id, err := url.PathUnescape(seg)
		if err != nil || id == "" || id == "." || id == ".." {
			s.rateHeaders(w, r.URL.Query().Get("api_key"))
			s.write(w, reply{404, errBody(4004, "invalid chat ID")})
			return
		}
		r.SetPathValue("id", id)
	}
	h, ok := s.routes[r.Method+" "+route]
	if !ok {
		w.Header().Set("Allow", s.allow(route))
		s.rateHeaders(w, r.URL.Query().Get("api_key"))
		s.write(w, reply{405, errBody(4003, "method not allowed")})
		return
	}
	h(w, r)
}

func (s *Server) allow(route string) string {
	var m []string
	for _, method := range []string{"GET", "POST"} {
		if _, ok := s.routes[method+" "+route]; ok {
			m = append(m, method)
		}
	}
	return strings.Join(m, ", ")
}

// SetFaults changes the injected faults at run time. Invalid rates are
// clamped to [0, 1].
func (s *Server) SetFaults(f Faults) {
	clamp := func(v float64) float64 {
		if v != v {
			return 0
		}
		return min(max(v, 0), 1)
	}
	f.ErrorRate, f.DropRate, f.HangRate, f.TruncateRate = clamp(f.ErrorRate), clamp(f.DropRate), clamp(f.HangRate), clamp(f.TruncateRate)
	f.Latency, f.LatencyJitter = max(f.Latency, 0), max(f.LatencyJitter, 0)
	s.faults.Store(&f)
}

// SetQuirks changes the shapes of answers at run time.
func (s *Server) SetQuirks(q Quirks) { s.quirks.Store(&q) }

// SetHonourIdempotencyKey switches the idempotency ledger on or off.
func (s *Server) SetHonourIdempotencyKey(on bool) { s.honour.Store(on) }

// Effects returns every applied effect in order.
func (s *Server) Effects() []Effect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.effects)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = make(map[int]int64, len(s.stats.ByStatus))
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	return st
}

// Reset forgets all chats, effects, counters, rate budgets and the
// idempotency ledger. Faults and configuration stay.
func (s *Server) Reset() {
	s.mu.Lock()
	s.chats = map[string]*chatState{}
	s.effects = nil
	s.ledger = map[string]reply{}
	s.stats = Stats{ByStatus: map[int]int64{}}
	s.mu.Unlock()
	s.rateMu.Lock()
	s.buckets = map[string]*bucket{}
	s.rateMu.Unlock()
}

// Seed adds deterministic conversations "seed-0000", "seed-0001", ... each
// with messagesPerChat messages alternating between visitor and agent, one
// note, and every fifth chat archived. Timestamps start at 2026-01-01 UTC.
// Seeded data is not recorded as effects.
func (s *Server) Seed(chats, messagesPerChat int) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range chats {
		id := fmt.Sprintf("seed-%04d", c)
		ch := s.chat(id)
		ts := base + int64(c)*60_000
		for m := range messagesPerChat {
			from := "client"
			if m%2 == 1 {
				from = "agent"
			}
			ts += 1000
			s.addMessage(ch, &item{ID: fmt.Sprintf("%s-m%04d", id, m), Type: "message", From: from, Content: fmt.Sprintf("message %d of %s", m, id), Timestamp: ts, PersonID: id, Entities: []any{}, Data: emptyObject})
		}
		ts += 1000
		s.addMessage(ch, &item{ID: id + "-note", Type: "message", From: "agent", Content: "note on " + id, Timestamp: ts, PersonID: id, Private: true, Entities: []any{}, Data: emptyObject})
		if c%5 == 4 {
			ts += 1000
			s.addArchive(ch, id+"-archive", ts)
		}
		s.lastTS = max(s.lastTS, ts)
	}
}

// handler computes the reply of an API call; it runs under s.mu.
type handler func(r *http.Request, id string, body map[string]any, now int64) reply

// api wraps a handler with the steps every API call shares, in the order a
// real API would take them: latency, authentication, rate limit, injected
// hangs and errors, idempotency replay, 404 rule, the effect, then injected
// drops and truncation.
func (s *Server) api(op string, h handler) http.HandlerFunc {
	isPost := op == "send" || op == "note" || op == "archive"
	return func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does net/http notice a client that
		// gives up, which ends injected hangs and latency.
		var raw []byte
		var rawErr error
		if isPost {
			raw, rawErr = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		}
		f := s.faults.Load()
		if d := f.Latency + s.jitter(f.LatencyJitter); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				s.count(0)
				return
			}
		}
		q := r.URL.Query()
		key, site := q.Get("api_key"), q.Get("site_token")
		if rep, ok := s.authorise(key, site); !ok {
			s.rateHeaders(w, key)
			s.write(w, rep)
			return
		}
		if !s.takeBudget(w, key) {
			return
		}
		if s.roll(f.HangRate) {
			s.bump(func(st *Stats) { st.Hung++ })
			<-r.Context().Done()
			s.count(0)
			return
		}
		if s.roll(f.ErrorRate) {
			s.bump(func(st *Stats) { st.Errors++ })
			status := 500
			if s.roll(0.5) {
				status = 503
			}
			s.write(w, reply{status, errBody(5000, "internal error")})
			return
		}
		id := r.PathValue("id")
		var body map[string]any
		if isPost && op != "archive" {
			if rawErr != nil {
				s.write(w, reply{413, errBody(4003, "request body too large")})
				return
			}
			if len(strings.TrimSpace(string(raw))) > 0 {
				if err := json.Unmarshal(raw, &body); err != nil {
					s.write(w, reply{400, errBody(4003, "request body is not a JSON object")})
					return
				}
			}
		}
		idemKey := r.Header.Get("Idempotency-Key")
		effectsBefore := int64(0)
		s.mu.Lock()
		ledgerKey := ""
		if isPost && idemKey != "" && s.honour.Load() {
			ledgerKey = key + "\x00" + idemKey
			if rep, ok := s.ledger[ledgerKey]; ok {
				s.stats.IdempotentReplays++
				s.mu.Unlock()
				s.write(w, rep)
				return
			}
		}
		var rep reply
		if id != "" && strings.HasPrefix(id, s.cfg.NotFoundPrefix) {
			rep = reply{404, errBody(4004, "chat not found")}
		} else {
			effectsBefore = int64(len(s.effects))
			now := time.Now().UnixMilli()
			now = max(now, s.lastTS+1)
			rep = h(r, id, body, now)
			if int64(len(s.effects)) > effectsBefore {
				s.lastTS = now
				e := &s.effects[len(s.effects)-1]
				e.IdempotencyKey, e.Path, e.Op = idemKey, r.URL.EscapedPath(), op
				s.stats.Effects++
			}
		}
		if ledgerKey != "" && rep.status < 500 {
			s.ledger[ledgerKey] = rep
		}
		applied := int64(len(s.effects)) > effectsBefore
		s.mu.Unlock()

		if applied && s.roll(f.DropRate) {
			s.bump(func(st *Stats) { st.Dropped++ })
			s.count(0)
			drop(w)
			return
		}
		if rep.status < 300 && s.roll(f.TruncateRate) {
			s.bump(func(st *Stats) { st.Truncated++ })
			s.count(rep.status)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(rep.body)))
			w.WriteHeader(rep.status)
			w.Write(rep.body[:len(rep.body)/2])
			http.NewResponseController(w).Flush()
			drop(w)
			return
		}
		s.write(w, rep)
	}
}

// drop closes the connection without (the rest of) a response.
func drop(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) authorise(key, site string) (reply, bool) {
	if key == "" || site == "" {
		return reply{401, errBody(4000, "parameter missing: api_key and site_token are required")}, false
	}
	if len(s.cfg.Credentials) == 0 {
		return reply{}, true
	}
	sites, ok := s.cfg.Credentials[key]
	if !ok {
		return reply{401, errBody(4001, "API key not authorised")}, false
	}
	if !slices.Contains(sites, site) {
		return reply{403, errBody(4001, "API key not authorised for this site")}, false
	}
	return reply{}, true
}

// takeBudget charges one unit to key's bucket and sets the X-RateLimit-*
// headers; over budget it answers 429 and returns false.
func (s *Server) takeBudget(w http.ResponseWriter, key string) bool {
	if s.perSec == 0 {
		return true
	}
	const cost = 1
	tokens, ok := s.budget(key, cost)
	s.setRateHeaders(w, cost, tokens)
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil((cost-tokens)/s.perSec)))))
	s.bump(func(st *Stats) { st.RateLimited++ })
	s.write(w, reply{429, errBody(4002, "rate limit exceeded")})
	return false
}

// budget refills key's bucket, charges cost if the bucket holds it, and
// returns what is left and whether it was charged. Cost 0 only looks.
func (s *Server) budget(key string, cost float64) (float64, bool) {
	capacity := float64(s.cfg.RatePerMinute)
	now := time.Now()
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		b = &bucket{tokens: capacity, last: now}
		s.buckets[key] = b
	}
	b.tokens = min(capacity, b.tokens+now.Sub(b.last).Seconds()*s.perSec)
	b.last = now
	ok = b.tokens >= cost
	if ok {
		b.tokens -= cost
	}
	return b.tokens, ok
}

// rateHeaders sets the X-RateLimit-* headers of an answer that cost nothing
// (refused before the budget was charged), so that every API response
// carries them, as the API's do.
func (s *Server) rateHeaders(w http.ResponseWriter, key string) {
	if s.perSec == 0 {
		return
	}
	tokens, _ := s.budget(key, 0)
	s.setRateHeaders(w, 0, tokens)
}

func (s *Server) setRateHeaders(w http.ResponseWriter, cost int, tokens float64) {
	h := w.Header()
	h.Set("X-RateLimit-Cost", strconv.Itoa(cost))
	h.Set("X-RateLimit-Limit", s.limitHdr)
	h.Set("X-RateLimit-Remaining", strconv.Itoa(int(tokens)))
	h.Set("X-RateLimit-Full", strconv.Itoa(int(math.Ceil((float64(s.cfg.RatePerMinute)-tokens)/s.perSec))))
}

func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

func (s *Server) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return time.Duration(s.rng.Int64N(int64(d)))
}

// newID returns a UUID-shaped ID from the seeded generator.
func (s *Server) newID() string {
	s.rngMu.Lock()
	a, b := s.rng.Uint64(), s.rng.Uint64()
	s.rngMu.Unlock()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0x3fff|0x8000, b&0xffffffffffff)
}

func (s *Server) bump(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// count records a finished request; status 0 means no answer was sent.
func (s *Server) count(status int) {
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByStatus[status]++
	s.mu.Unlock()
}

func (s *Server) write(w http.ResponseWriter, rep reply) {
	s.count(rep.status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(rep.body)))
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func errBody(code int, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"code": code, "message": fmt.Sprintf("Error %d: %s", code, msg)})
	return b
}

func ok(v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		return reply{500, errBody(5000, "encoding response")}
	}
	return reply{200, b}
}

func (s *Server) postFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err == nil {
		err = f.validate()
	}
	if err != nil {
		writeJSON(w, 400, json.RawMessage(errBody(4003, err.Error())))
		return
	}
	s.SetFaults(f)
	writeJSON(w, 200, f)
}

// chat returns the state of id, creating it; the caller holds s.mu.
func (s *Server) chat(id string) *chatState {
	ch, ok := s.chats[id]
	if !ok {
		ch = &chatState{id: id}
		s.chats[id] = ch
	}
	return ch
}

func (s *Server) addMessage(ch *chatState, m *item) {
	ch.feed = append(ch.feed, m)
	ch.latest = m
	ch.activity = m.Timestamp
	if m.From == "client" && !m.Private {
		ch.archived = nil // a visitor's message moves the chat back to the Inbox
	}
}

func (s *Server) addArchive(ch *chatState, id string, now int64) {
	ts := now
	ch.archived = &ts
	ch.activity = now
	ch.feed = append(ch.feed, &item{ID: id, Type: "event", Event: "archive", Timestamp: now, PersonID: ch.id, Entities: []any{}, Data: emptyObject})
}

func (s *Server) effect(op, id, content, from string, now int64) {
	s.effects = append(s.effects, Effect{Seq: int64(len(s.effects)) + 1, Op: op, ChatID: id, Content: content, From: from, At: time.UnixMilli(now)})
}

func (s *Server) send(r *http.Request, id string, body map[string]any, now int64) reply {
	content, okC := body["content"].(string)
	if !okC || content == "" {
		return reply{400, errBody(4000, "parameter missing: content")}
	}
	from := "client"
	if v, present := body["from"]; present {
		f, _ := v.(string)
		switch f {
		case "client", "agent", "bot":
			from = f
		default:
			return reply{400, errBody(4004, "invalid parameter value: from must be client, agent or bot")}
		}
	}
	m := &item{ID: s.newID(), Type: "message", From: from, Content: content, Timestamp: now, PersonID: id, Entities: []any{}, Data: emptyObject}
	s.addMessage(s.chat(id), m)
	s.effect("send", id, content, from, now)
	return ok(m)
}

func (s *Server) note(r *http.Request, id string, body map[string]any, now int64) reply {
	content, okC := body["content"].(string)
	if !okC || content == "" {
		return reply{400, errBody(4000, "parameter missing: content")}
	}
	m := &item{ID: s.newID(), Type: "message", From: "agent", Content: content, Timestamp: now, PersonID: id, Private: true, Entities: []any{}, Data: emptyObject}
	s.addMessage(s.chat(id), m)
	s.effect("note", id, content, "", now)
	return ok(m)
}

func (s *Server) archive(r *http.Request, id string, _ map[string]any, now int64) reply {
	ch := s.chat(id)
	s.addArchive(ch, s.newID(), now)
	s.effect("archive", id, "", "", now)
	return ok(s.chatJSON(ch))
}

type chatJSON struct {
	ID       string          `json:"id"`
	Archived any             `json:"archived"` // *int64, or a bool with Quirks.ArchivedBool
	Latest   *latestJSON     `json:"latest"`
	Agent    json.RawMessage `json:"agent"`
	Client   json.RawMessage `json:"client"`
	Language string          `json:"language"`
	Links    map[string]any  `json:"_links"`
}

type latestJSON struct {
	Timestamp int64 `json:"timestamp"`
	Message   *item `json:"message"`
}

var readDelivered = json.RawMessage(`{"read":null,"delivered":null}`)

func (s *Server) chatJSON(ch *chatState) chatJSON {
	c := chatJSON{ID: ch.id, Archived: ch.archived, Agent: readDelivered, Client: readDelivered, Language: "en",
		Links: map[string]any{"self": map[string]string{"href": "/chats/" + url.PathEscape(ch.id)}}}
	if ch.latest != nil {
		c.Latest = &latestJSON{Timestamp: ch.activity, Message: ch.latest}
	}
	if s.quirks.Load().ArchivedBool {
		c.Archived = ch.archived != nil
	}
	return c
}

type listJSON[T any] struct {
	List []T `json:"list"`
}

var errBadLimit = errors.New("bad limit")

// parseLimit reads limit="count" or "offset,count" (default 0,10, max 250).
func parseLimit(q url.Values) (offset, count int, err error) {
	v := q.Get("limit")
	if v == "" {
		return 0, 10, nil
	}
	o, c, two := strings.Cut(v, ",")
	if !two {
		o, c = "0", v
	}
	offset, err1 := strconv.Atoi(strings.TrimSpace(o))
	count, err2 := strconv.Atoi(strings.TrimSpace(c))
	if err1 != nil || err2 != nil || offset < 0 || count < 0 {
		return 0, 0, errBadLimit
	}
	return offset, min(count, 250), nil
}

// parseRange reads from/to epoch ms (0 = open).
func parseRange(q url.Values) (from, to int64, err error) {
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < 0 {
				return 0, 0, errBadLimit
			}
			*p.dst = n
		}
	}
	return from, to, nil
}

func inRange(ts, from, to int64) bool {
	return (from == 0 || ts >= from) && (to == 0 || ts <= to)
}

func page[T any](all []T, offset, count int) []T {
	if offset >= len(all) {
		return []T{}
	}
	return all[offset:min(len(all), offset+count)]
}

func (s *Server) listChats(r *http.Request, _ string, _ map[string]any, _ int64) reply {
	q := r.URL.Query()
	offset, count, err := parseLimit(q)
	from, to, err2 := parseRange(q)
	if err != nil || err2 != nil {
		return reply{400, errBody(4003, "invalid parameter: limit, from or to")}
	}
	all := make([]*chatState, 0, len(s.chats))
	for _, ch := range s.chats {
		if inRange(ch.activity, from, to) {
			all = append(all, ch)
		}
	}
	slices.SortFunc(all, func(a, b *chatState) int {
		if a.activity != b.activity {
			return int(b.activity - a.activity)
		}
		return strings.Compare(a.id, b.id)
	})
	out := listJSON[chatJSON]{List: []chatJSON{}}
	for _, ch := range page(all, offset, count) {
		out.List = append(out.List, s.chatJSON(ch))
	}
	return ok(out)
}

func (s *Server) getChat(_ *http.Request, id string, _ map[string]any, _ int64) reply {
	ch, found := s.chats[id]
	if !found {
		ch = &chatState{id: id} // every person has a (possibly empty) chat
	}
	return ok(s.chatJSON(ch))
}

// newestFirst returns the chat's feed items matching keep, newest first.
func newestFirst(ch *chatState, keep func(*item) bool) []*item {
	if ch == nil {
		return nil
	}
	out := make([]*item, 0, len(ch.feed))
	for i := len(ch.feed) - 1; i >= 0; i-- {
		if keep(ch.feed[i]) {
			out = append(out, ch.feed[i])
		}
	}
	return out
}

func (s *Server) feed(r *http.Request, id string, _ map[string]any, _ int64) reply {
	q := r.URL.Query()
	offset, count, err := parseLimit(q)
	from, to, err2 := parseRange(q)
	if err != nil || err2 != nil {
		return reply{400, errBody(4003, "invalid parameter: limit, from or to")}
	}
	items := newestFirst(s.chats[id], func(it *item) bool { return inRange(it.Timestamp, from, to) })
	return ok(listJSON[*item]{List: page(items, offset, count)})
}

func (s *Server) messages(r *http.Request, id string, _ map[string]any, _ int64) reply {
	q := r.URL.Query()
	limit, offset := 20, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return reply{400, errBody(4003, "invalid parameter: limit")}
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return reply{400, errBody(4003, "invalid parameter: offset")}
		}
	}
	items := newestFirst(s.chats[id], func(it *item) bool { return it.Type == "message" })
	return ok(listJSON[*item]{List: page(items, offset, min(limit, 250))})
}
