package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the key-value bucket of the project states.
const DefaultBucket = "CHAT_PROJECTS"

// The bucket holds two keys a project at most: operator.<project> while an
// operator's pause holds, health.<project> while the workers hold one. A
// project with neither is active, so an empty bucket means every project
// runs.
const (
	operatorKey = "operator."
	healthKey   = "health."
)

// validName matches what a project is called in the bucket: the v2 names
// (a-z, 0-9, -) as well as the site tokens that name projects of v1
// commands (GSN-106863-S), and "default".
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ErrInvalidName is returned for a project name the bucket cannot hold.
var ErrInvalidName = errors.New("project: a project name is 1 to 64 letters, digits, - or _, starting with a letter or digit")

// ErrNoBucket is returned by Bind when the bucket does not exist yet.
var ErrNoBucket = errors.New("project: no project state bucket: run `worker provision` (or start a worker) first")

func checkName(project string) error {
	if !validName.MatchString(project) {
		return fmt.Errorf("%w (got %q)", ErrInvalidName, clip(project, 70))
	}
	return nil
}

// Store reads and changes project states. It is safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// Config says where the states live.
type Config struct {
	Bucket   string // DefaultBucket when empty
	Replicas int    // 1 when zero
	Storage  jetstream.StorageType
}

// Open creates the bucket, or updates the settings of an existing one
// (keeping its keys), and returns the store. Workers and `worker provision`
// call it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "chat worker project states: pauses by operators, for configuration and for outages",
		History:     5, // a short trail for operators looking at `nats kv history`
		Replicas:    cfg.Replicas,
		Storage:     cfg.Storage,
	})
	if err != nil {
		return nil, fmt.Errorf("project: create or update bucket %q: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv, now: time.Now}, nil
}

// Bind returns the store of an existing bucket without changing it, for the
// command line and apps, which may lack the permission to create buckets.
func Bind(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoBucket
	}
	if err != nil {
		return nil, fmt.Errorf("project: open bucket %q: %w", bucket, err)
	}
	return &Store{kv: kv, now: time.Now}, nil
}

// Get returns the state of one project.
func (s *Store) Get(ctx context.Context, project string) (State, error) {
	if err := checkName(project); err != nil {
		return State{}, err
	}
	st := State{Project: project}
	for _, k := range []struct {
		key string
		to  **Pause
	}{{operatorKey, &st.Operator}, {healthKey, &st.Health}} {
		p, _, err := s.read(ctx, k.key+project)
		if err != nil {
			return State{}, err
		}
		*k.to = p
	}
	return st, nil
}

// List returns the state of every project that has one stored (every
// project not listed is active), sorted by name.
func (s *Store) List(ctx context.Context) ([]State, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: list states: %w", err)
	}
	byName := map[string]*State{}
	for key := range keys.Keys() {
		project, kind, ok := splitKey(key)
		if !ok {
			continue
		}
		p, _, err := s.read(ctx, key)
		if err != nil {
			return nil, err
		}
		if p == nil {
			continue
		}
		st := byName[project]
		if st == nil {
			st = &State{Project: project}
			byName[project] = st
		}
		if kind == operatorKey {
			st.Operator = p
		} else {
			st.Health = p
		}
	}
	out := make([]State, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.Project, b.Project) })
	return out, nil
}

// PauseByOperator pauses project until ResumeByOperator, on every replica
// and across restarts. Pausing a paused project changes its reason and
// keeps its time.
func (s *Store) PauseByOperator(ctx context.Context, project, reason, by string) (State, error) {
	if err := checkName(project); err != nil {
		return State{}, err
	}
	p := Pause{Cause: CauseOperator, Reason: clip(strings.TrimSpace(reason), maxReason), By: by, Since: s.now().UTC()}
	if err := p.validate(); err != nil {
		return State{}, err
	}
	old, _, err := s.read(ctx, operatorKey+project)
	if err != nil {
		return State{}, err
	}
	if old != nil {
		p.Since = old.Since
	}
	if err := s.write(ctx, operatorKey+project, p, nil); err != nil {
		return State{}, err
	}
	return s.Get(ctx, project)
}

// ResumeByOperator ends an operator's pause. wasPaused is false when there
// was none; a pause of the workers' own (configuration, outage) stays until
// their probe succeeds.
func (s *Store) ResumeByOperator(ctx context.Context, project string) (st State, wasPaused bool, err error) {
	if err := checkName(project); err != nil {
		return State{}, false, err
	}
	old, _, err := s.read(ctx, operatorKey+project)
	if err != nil {
		return State{}, false, err
	}
	if old != nil {
		if err := s.kv.Purge(ctx, operatorKey+project); err != nil {
			return State{}, false, fmt.Errorf("project: resume %s: %w", project, err)
		}
	}
	st, err = s.Get(ctx, project)
	return st, old != nil, err
}

// PauseHealth records the workers' own pause of project, with prober as the
// worker that checks it until lease from now. Only the first of racing
// replicas stores its pause: the one stored is returned with won true for
// that replica and false for the others.
func (s *Store) PauseHealth(ctx context.Context, project string, cause Cause, reason, prober string, lease time.Duration) (stored Pause, won bool, err error) {
	if err := checkName(project); err != nil {
		return Pause{}, false, err
	}
	if cause == CauseOperator {
		return Pause{}, false, errors.New("project: an operator's pause is made with PauseByOperator")
	}
	now := s.now().UTC()
	p := Pause{Cause: cause, Reason: clip(reason, maxReason), By: prober, Since: now, Prober: prober, ProbeUntil: now.Add(lease)}
	if err := p.validate(); err != nil {
		return Pause{}, false, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Pause{}, false, err
	}
	if _, err := s.kv.Create(ctx, healthKey+project, b); err == nil {
		return p, true, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return Pause{}, false, fmt.Errorf("project: pause %s: %w", project, err)
	}
	old, _, err := s.read(ctx, healthKey+project)
	if err != nil {
		return Pause{}, false, err
	}
	if old == nil { // resumed between the create and the read: try once more
		return s.PauseHealth(ctx, project, cause, reason, prober, lease)
	}
	return *old, false, nil
}

// TakeProbe renews prober's turn to check project, or takes it over when the
// prober's turn has ended. ok is false when another worker holds the turn
// or the project is no longer paused by the workers.
func (s *Store) TakeProbe(ctx context.Context, project, prober string, lease time.Duration) (ok bool, err error) {
	p, rev, err := s.read(ctx, healthKey+project)
	if err != nil || p == nil {
		return false, err
	}
	now := s.now().UTC()
	if p.Prober != prober && now.Before(p.ProbeUntil) {
		return false, nil
	}
	p.Prober, p.ProbeUntil = prober, now.Add(lease)
	if err := s.write(ctx, healthKey+project, *p, &rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) { // another replica took it first
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// ResumeHealth ends the workers' own pause of project (its probe succeeded).
// An operator's pause stays.
func (s *Store) ResumeHealth(ctx context.Context, project string) error {
	if err := checkName(project); err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, healthKey+project); err != nil {
		return fmt.Errorf("project: resume %s: %w", project, err)
	}
	return nil
}

// read returns the pause under key, nil when there is none.
func (s *Store) read(ctx context.Context, key string) (*Pause, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("project: read %s: %w", key, err)
	}
	p, err := decode(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("project: read %s: %w", key, err)
	}
	return p, e.Revision(), nil
}

// write stores p under key; with rev, only over that revision.
func (s *Store) write(ctx context.Context, key string, p Pause, rev *uint64) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if rev != nil {
		_, err = s.kv.Update(ctx, key, b, *rev)
	} else {
		_, err = s.kv.Put(ctx, key, b)
	}
	if err != nil {
		return fmt.Errorf("project: write %s: %w", key, err)
	}
	return nil
}

func decode(b []byte) (*Pause, error) {
	var p Pause
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not a project state: %w", err)
	}
	if !p.Cause.valid() {
		return nil, fmt.Errorf("not a project state: unknown cause %q", p.Cause)
	}
	return &p, nil
}

// splitKey returns the project and the kind (operatorKey or healthKey) of a
// bucket key.
func splitKey(key string) (project, kind string, ok bool) {
	for _, k := range []string{operatorKey, healthKey} {
		if p, found := strings.CutPrefix(key, k); found && validName.MatchString(p) {
			return p, k, true
		}
	}
	return "", "", false
}
