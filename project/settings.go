package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/nats-io/nats.go/jetstream"
)

// settingsKey prefixes a project's settings in the bucket:
// settings.<project>, next to its pauses. Workers that predate settings
// ignore the key.
const settingsKey = "settings."

// Settings are a project's defaults for its send commands, set by an
// operator (worker projects set) and applied by every replica within moments
// of a change, without a restart. A send command's own quiet_hours or
// frequency_cap replaces the project's; other command types are not held to
// the project's defaults (they do not reach the visitor).
type Settings struct {
	Project string `json:"project"`
	// QuietHours is the window of the visitor's day, on the clock of the
	// project's zone, in which the project's sends wait.
	QuietHours *contract.QuietHours `json:"quiet_hours,omitempty"`
	// FrequencyCap bounds the automated sends to each chat of the project.
	FrequencyCap *contract.FrequencyCap `json:"frequency_cap,omitempty"`
	By           string                 `json:"by,omitempty"`
	Since        time.Time              `json:"since,omitzero"`
}

// Empty reports whether s sets nothing.
func (s Settings) Empty() bool { return s.QuietHours == nil && s.FrequencyCap == nil }

// Validate checks the quiet hours and the cap.
func (s Settings) Validate() error {
	if s.QuietHours != nil {
		if err := s.QuietHours.Validate(); err != nil {
			return err
		}
	}
	if s.FrequencyCap != nil {
		if err := s.FrequencyCap.Validate(); err != nil {
			return err
		}
	}
	if len(s.By) > maxBy {
		return fmt.Errorf("project: by is %d bytes, at most %d", len(s.By), maxBy)
	}
	return nil
}

// String is s for a person: "quiet 21:00-08:00 Europe/London, cap 3/24h".
func (s Settings) String() string {
	var parts []string
	if q := s.QuietHours; q != nil {
		parts = append(parts, fmt.Sprintf("quiet %s-%s %s", q.Start, q.End, q.TZ))
	}
	if c := s.FrequencyCap; c != nil {
		parts = append(parts, "cap "+c.String())
	}
	if len(parts) == 0 {
		return "no defaults"
	}
	return strings.Join(parts, ", ")
}

// Settings returns project's settings; the zero Settings (Empty) when none
// are stored.
func (s *Store) Settings(ctx context.Context, project string) (Settings, error) {
	if err := checkName(project); err != nil {
		return Settings{}, err
	}
	e, err := s.kv.Get(ctx, settingsKey+project)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Settings{Project: project}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("project: read the settings of %s: %w", project, err)
	}
	st, err := decodeSettings(project, e.Value())
	if err != nil {
		return Settings{}, fmt.Errorf("project: read the settings of %s: %w", project, err)
	}
	return st, nil
}

// SetSettings stores st as project's settings, replacing any; Empty
// settings remove them (as ClearSettings).
func (s *Store) SetSettings(ctx context.Context, project string, st Settings) (Settings, error) {
	if err := checkName(project); err != nil {
		return Settings{}, err
	}
	st.Project, st.Since = project, s.now().UTC()
	if st.Empty() {
		_, err := s.ClearSettings(ctx, project)
		return Settings{Project: project}, err
	}
	if err := st.Validate(); err != nil {
		return Settings{}, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return Settings{}, err
	}
	if _, err := s.kv.Put(ctx, settingsKey+project, b); err != nil {
		return Settings{}, fmt.Errorf("project: set the settings of %s: %w", project, err)
	}
	return st, nil
}

// ClearSettings removes project's settings; had is false when there were
// none.
func (s *Store) ClearSettings(ctx context.Context, project string) (had bool, err error) {
	old, err := s.Settings(ctx, project)
	if err != nil {
		return false, err
	}
	if old.Empty() {
		return false, nil
	}
	if err := s.kv.Purge(ctx, settingsKey+project); err != nil {
		return false, fmt.Errorf("project: clear the settings of %s: %w", project, err)
	}
	return true, nil
}

// ListSettings returns the settings of every project that has some, sorted
// by name.
func (s *Store) ListSettings(ctx context.Context) ([]Settings, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: list settings: %w", err)
	}
	var out []Settings
	for key := range keys.Keys() {
		name, ok := settingsName(key)
		if !ok {
			continue
		}
		st, err := s.Settings(ctx, name)
		if err != nil {
			return nil, err
		}
		if !st.Empty() {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b Settings) int { return strings.Compare(a.Project, b.Project) })
	return out, nil
}

func settingsName(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, settingsKey)
	return name, ok && validName.MatchString(name)
}

func decodeSettings(project string, b []byte) (Settings, error) {
	var st Settings
	if err := json.Unmarshal(b, &st); err != nil {
		return Settings{}, fmt.Errorf("not project settings: %w", err)
	}
	if err := st.Validate(); err != nil {
		return Settings{}, fmt.Errorf("not valid project settings: %w", err)
	}
	st.Project = project
	return st, nil
}
