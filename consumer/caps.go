package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/project"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Frequency caps and project defaults
//
// A send command may carry a frequency cap (at most max sends to its chat in
// the last per), and its project may carry a default cap and default quiet
// hours (project.Settings, set with `worker projects set`): a send's own
// field replaces its project's. Sends under a cap are counted per chat in
// the key-value bucket CHAT_CAPS, shared by every replica: one key per
// project and chat, holding the ids and times of the chat's last sends
// under a cap. A send is checked after its claim, so a duplicate still gets
// its result, and counted once its call succeeded, under its id, so a
// redelivery neither counts twice nor is held to its own send. Per-chat
// order runs one command of a chat at a time, so a check and the count
// that follows cannot interleave with another send of the chat. A send over
// its cap becomes a dead letter of class capped, without an API call; a
// replayed command (contract.ReplayedFromHeader) is an operator's decision
// and is sent whatever the cap, and counted.

// DefaultCapsBucket is the key-value bucket of the sends counted for caps.
const DefaultCapsBucket = "CHAT_CAPS"

// ChatCaps counts the sends under a cap of each chat. It is safe for
// concurrent use.
type ChatCaps struct {
	kv jetstream.KeyValue
}

// CapsConfig says where the counts live.
type CapsConfig struct {
	Bucket   string // DefaultCapsBucket when empty
	Replicas int    // 1 when zero
	Storage  jetstream.StorageType
}

// OpenChatCaps creates the bucket, or updates an existing one's settings
// (keeping its keys). A chat's key expires a cap's longest window after
// its last send: by then none of its sends counts.
func OpenChatCaps(ctx context.Context, js jetstream.JetStream, cfg CapsConfig) (*ChatCaps, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultCapsBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "chat worker frequency caps: the last sends under a cap of each chat",
		History:     1,
		TTL:         contract.MaxCapWindow,
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
	if err != nil {
		return nil, fmt.Errorf("caps: create or update bucket %q: %w", cfg.Bucket, err)
	}
	return &ChatCaps{kv: kv}, nil
}

// capSend is one send counted for a chat.
type capSend struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// capRecord is what the bucket holds for one chat: its last sends under a
// cap, oldest first, at most contract.MaxCapSends of them (no cap needs
// more to be decided) and none older than contract.MaxCapWindow.
type capRecord struct {
	Sends []capSend `json:"sends"`
}

var plainLabel = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// capKey is the bucket key of chat in project: the project's label and a
// digest of the chat ID (a chat token may hold characters no key may, and
// the key need not show who the visitor is).
func capKey(project, chatID string) string {
	if !plainLabel.MatchString(project) {
		sum := sha256.Sum256([]byte(project))
		project = hex.EncodeToString(sum[:12])
	}
	sum := sha256.Sum256([]byte(chatID))
	return project + "." + hex.EncodeToString(sum[:16])
}

// read returns key's record and its revision, 0 when there is none.
func (c *ChatCaps) read(ctx context.Context, key string) (capRecord, uint64, error) {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return capRecord{}, 0, nil
	}
	if err != nil {
		return capRecord{}, 0, fmt.Errorf("caps: read %s: %w", key, err)
	}
	var r capRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return capRecord{}, e.Revision(), nil // not ours: start afresh over it
	}
	return r, e.Revision(), nil
}

// Sent is how many sends under a cap key's chat had since since, its own
// (id's) left out.
func (c *ChatCaps) Sent(ctx context.Context, key, id string, since time.Time) (int, error) {
	r, _, err := c.read(ctx, key)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range r.Sends {
		if s.ID != id && s.At.After(since) {
			n++
		}
	}
	return n, nil
}

// Count records id's send at at for key's chat, once: a send already
// counted (a redelivery) is not counted again.
func (c *ChatCaps) Count(ctx context.Context, key, id string, at time.Time) error {
	var err error
	for range 5 { // racing writers: read again and retry
		var r capRecord
		var rev uint64
		if r, rev, err = c.read(ctx, key); err != nil {
			return err
		}
		if slices.ContainsFunc(r.Sends, func(s capSend) bool { return s.ID == id }) {
			return nil
		}
		r.Sends = append(r.Sends, capSend{ID: id, At: at.UTC()})
		slices.SortStableFunc(r.Sends, func(a, b capSend) int { return a.At.Compare(b.At) })
		r.Sends = slices.DeleteFunc(r.Sends, func(s capSend) bool { return at.Sub(s.At) > contract.MaxCapWindow })
		if n := len(r.Sends); n > contract.MaxCapSends {
			r.Sends = r.Sends[n-contract.MaxCapSends:]
		}
		b, merr := json.Marshal(r)
		if merr != nil {
			return merr
		}
		if rev == 0 {
			_, err = c.kv.Create(ctx, key, b)
		} else {
			_, err = c.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("caps: count a send in %s: %w", key, err)
}

// rules are what holds one command back besides its project's state: its
// quiet hours and its frequency cap, its own or its project's.
type rules struct {
	quiet *contract.QuietHours
	cap   *contract.FrequencyCap
	// capFrom says whose cap it is: "its own" or "the default cap of
	// project X".
	capFrom string
	// label is the command's project as metrics and the bucket name it.
	label string
}

// capGate gives a command its rules and keeps the count of sends.
type capGate struct {
	counts *ChatCaps // nil until Run opens the bucket (or Config.Caps)
	// settings are a project's defaults (nil without shared project
	// states: then only a command's own fields hold it).
	settings func(label string) project.Settings
	gate     *projectGate // names the command's project; nil without Config.Projects
	log      *zap.Logger
}

// rulesFor is cmd's quiet hours and cap: its own, else its project's
// defaults for a send.
func (g *capGate) rulesFor(cmd actions.Command) rules {
	r := rules{quiet: cmd.QuietHours, cap: cmd.FrequencyCap, capFrom: "its own", label: g.label(cmd)}
	if cmd.Type != contract.TypeSend || g.settings == nil || (r.quiet != nil && r.cap != nil) {
		return r
	}
	st := g.settings(r.label)
	if r.quiet == nil {
		r.quiet = st.QuietHours
	}
	if r.cap == nil && st.FrequencyCap != nil {
		r.cap, r.capFrom = st.FrequencyCap, "the default cap of project "+r.label
	}
	return r
}

// label names cmd's project: by its v2 name when its subject carries one,
// else as the project gate resolves it (a configured project's name), and
// without a gate "default" for the worker's own project and the site token
// for another.
func (g *capGate) label(cmd actions.Command) string {
	if cmd.Project != "" {
		return cmd.Project
	}
	if g.gate != nil {
		p, _ := g.gate.project(cmd)
		return p
	}
	if cmd.SiteToken == "" {
		return "default"
	}
	return cmd.SiteToken
}

// check is nil when d's send may go ahead under r's cap, or the capped
// error when its chat had its cap's worth of sends in the window. A
// replayed command is not held to a cap.
func (g *capGate) check(ctx context.Context, d *delivery, r rules, now time.Time) error {
	if r.cap == nil || d.cmd.Type != contract.TypeSend || d.headers.Get(contract.ReplayedFromHeader) != "" {
		return nil
	}
	if g.counts == nil {
		return &storeError{errors.New("caps: no bucket to count sends in")}
	}
	per, err := r.cap.Window()
	if err != nil {
		return err
	}
	sent, err := g.counts.Sent(ctx, capKey(r.label, d.cmd.ChatID), d.cmd.ID, now.Add(-per))
	if err != nil {
		return &storeError{err}
	}
	if sent >= r.cap.Max {
		return contract.Capped(*r.cap, sent, r.capFrom)
	}
	return nil
}

// count records d's successful send under r's cap. A count that cannot be
// stored is logged: the message was sent, and the result must say so.
func (g *capGate) count(ctx context.Context, d *delivery, r rules, at time.Time) {
	if r.cap == nil || d.cmd.Type != contract.TypeSend || g.counts == nil {
		return
	}
	if err := g.counts.Count(context.WithoutCancel(ctx), capKey(r.label, d.cmd.ChatID), d.cmd.ID, at); err != nil {
		d.log.Error("counting the send for its frequency cap failed: the chat's next sends may exceed it", zap.Error(err))
	}
}
