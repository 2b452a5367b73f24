package system

import (
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/test/containers"
)

// TestImagesCarryTimeZones: both images are FROM scratch, with no
// /usr/share/zoneinfo, yet a cron schedule in a named zone is accepted by
// the NATS image (the server loads the zone when the schedule is stored)
// and by the worker image's command line (which loads it to validate and to
// say when it fires first).
func TestImagesCarryTimeZones(t *testing.T) {
	containers.RequireDocker(t)
	cluster := containers.StartNATSCluster(t, 1)
	js := connect(t, cluster.ClientURLs(t))
	if _, err := consumer.Provision(t.Context(), js, consumer.Topology{}); err != nil {
		t.Fatal(err)
	}
	r := actions.Recurrence{Cron: "0 0 9 * * 1-5", TZ: "Europe/London"}
	if _, err := actions.ScheduleRecurring(t.Context(), js, actions.Send{ID: "tz-nats", ChatID: "c1", Content: "Good morning"}, r, actions.Subjects{}); err != nil {
		t.Fatalf("the NATS image refused a schedule in Europe/London: %v", err)
	}
	// The sim runs the worker image; the binary is run in it by exec.
	sim := containers.StartSim(t, cluster.Network)
	code, out := sim.Exec(t, "/worker", "send", "--nats-url", cluster.InternalURLs(), "--chat", "c2", "--content", "Good morning",
		"--cron", r.Cron, "--tz", r.TZ, "--id", "tz-worker")
	if code != 0 {
		t.Fatalf("worker send --cron --tz Europe/London in the worker image: exit %d\n%s", code, out)
	}
	list, err := actions.ListSchedules(t.Context(), js, actions.Subjects{})
	if err != nil {
		t.Fatal(err)
	}
	want := r.Next(time.Now())
	if len(list) != 2 || list[0].TZ != r.TZ || list[1].TZ != r.TZ || !list[1].At.Equal(want) {
		t.Fatalf("schedules = %+v, want two in %s, next at %s", list, r.TZ, want)
	}
	if !strings.Contains(out, "tz-worker") {
		t.Errorf("worker send printed %q, want the id", out)
	}
}
