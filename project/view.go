package project

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// View is one replica's copy of every project state, kept current by a
// watch on the bucket: a change made by any replica or operator reaches it
// within moments, and asking it costs no round trip, so the worker can ask
// before every command.
type View struct {
	w        jetstream.KeyWatcher
	onChange func(State)

	mu       sync.RWMutex
	states   map[string]State
	settings map[string]Settings

	done chan struct{}
}

// Watch returns a View that has read every stored state. onChange, if not
// nil, is called with a project's new state after each change (from one
// goroutine, in order). Stop ends the watch.
func (s *Store) Watch(ctx context.Context, onChange func(State)) (*View, error) {
	w, err := s.kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("project: watch states: %w", err)
	}
	v := &View{w: w, onChange: onChange, states: map[string]State{}, settings: map[string]Settings{}, done: make(chan struct{})}
	// The stored states arrive first, then a nil entry.
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("project: watch states: the watch ended before the stored states were read")
			}
			if e == nil {
				go v.follow()
				return v, nil
			}
			v.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

func (v *View) follow() {
	defer close(v.done)
	for e := range v.w.Updates() {
		if e == nil {
			continue
		}
		if st, changed := v.apply(e); changed && v.onChange != nil {
			v.onChange(st)
		}
	}
}

// apply records one entry of the bucket and returns its project's new state,
// and whether a person would see a change.
func (v *View) apply(e jetstream.KeyValueEntry) (State, bool) {
	if name, ok := settingsName(e.Key()); ok {
		v.applySettings(name, e)
		return State{}, false
	}
	project, kind, ok := splitKey(e.Key())
	if !ok {
		return State{}, false
	}
	var p *Pause
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if p, err = decode(e.Value()); err != nil {
			return State{}, false // not ours: leave the project as it was
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.states[project]
	old := st
	st.Project = project
	if kind == operatorKey {
		st.Operator = p
	} else {
		st.Health = p
	}
	if st.Active() {
		delete(v.states, project)
	} else {
		v.states[project] = st
	}
	return st, old.Name() != st.Name() || reason(old) != reason(st)
}

// applySettings records one entry of a project's settings. Settings that
// do not decode leave the project's as they were.
func (v *View) applySettings(project string, e jetstream.KeyValueEntry) {
	st := Settings{Project: project}
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if st, err = decodeSettings(project, e.Value()); err != nil {
			return
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if st.Empty() {
		delete(v.settings, project)
	} else {
		v.settings[project] = st
	}
}

// Settings returns project's settings as this replica knows them (Empty
// when it has none).
func (v *View) Settings(project string) Settings {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if st, ok := v.settings[project]; ok {
		return st
	}
	return Settings{Project: project}
}

// reason is what a person is told of st: a probe's renewal changes nothing
// of it and so is no change to report.
func reason(st State) string {
	if p := st.Pause(); p != nil {
		return p.Reason + "\x00" + p.By
	}
	return ""
}

// State returns project's state as this replica knows it.
func (v *View) State(project string) State {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if st, ok := v.states[project]; ok {
		return st
	}
	return State{Project: project}
}

// Paused returns the states of the paused projects.
func (v *View) Paused() []State {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]State, 0, len(v.states))
	for _, st := range v.states {
		out = append(out, st)
	}
	return out
}

// Stop ends the watch and waits for the last onChange call to return.
func (v *View) Stop() {
	_ = v.w.Stop()
	<-v.done
}
