package project_test

import (
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/project"
	"github.com/chatworker/worker/workertest"
)

// A project's settings are stored beside its pauses without making it
// paused, reach a running view, and go with a clear.
func TestSettingsReachTheView(t *testing.T) {
	s, _ := open(t)
	v, err := s.Watch(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	want := project.Settings{QuietHours: &contract.QuietHours{Start: "21:00", End: "08:00", TZ: "Europe/London"},
		FrequencyCap: &contract.FrequencyCap{Max: 3, Per: "24h"}, By: "bob"}
	if _, err := s.SetSettings(t.Context(), "shop", want); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 5*time.Second, func() bool {
		got := v.Settings("shop")
		return got.FrequencyCap != nil && *got.FrequencyCap == *want.FrequencyCap && got.QuietHours != nil && *got.QuietHours == *want.QuietHours
	}, "the view never had the settings")
	if st := v.State("shop"); !st.Active() {
		t.Errorf("settings made the project %s", st.Name())
	}
	if list, err := s.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; settings are not states", list, err)
	}
	if list, err := s.ListSettings(t.Context()); err != nil || len(list) != 1 || list[0].Project != "shop" || list[0].By != "bob" {
		t.Errorf("ListSettings = %+v, %v", list, err)
	}
	if _, err := s.SetSettings(t.Context(), "shop", project.Settings{FrequencyCap: &contract.FrequencyCap{Max: 0, Per: "24h"}}); contract.ClassOf(err) != contract.ClassInvalid {
		t.Errorf("a cap of 0: %v, want it refused", err)
	}
	if had, err := s.ClearSettings(t.Context(), "shop"); err != nil || !had {
		t.Fatalf("ClearSettings = %v, %v", had, err)
	}
	workertest.Eventually(t, 5*time.Second, func() bool { return v.Settings("shop").Empty() }, "the view kept the cleared settings")
	if had, err := s.ClearSettings(t.Context(), "shop"); err != nil || had {
		t.Errorf("ClearSettings again = %v, %v; want nothing to clear", had, err)
	}
}
