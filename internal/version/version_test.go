package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/chatworker/worker", Version: "v1.1.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		want                Info
	}{
		{"ldflags win", "v2.0.0", "feedbeef", stamped, Info{"v2.0.0", "feedbeef", "go1.26.8"}},
		{"build info when no ldflags", "", "", stamped, Info{"v1.1.0", "0123456789ab-dirty", "go1.26.8"}},
		{"a clean tree is not dirty", "", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			Info{"(devel)", "abc", "go1.26.8"}},
		{"one field from each", "v3.0.0", "", stamped, Info{"v3.0.0", "0123456789ab-dirty", "go1.26.8"}},
		{"nothing known", "", "", nil, Info{"(devel)", Unknown, runtime.Version()}},
		{"no vcs settings (-buildvcs=false)", "", "", &debug.BuildInfo{GoVersion: "go1.26.8"}, Info{"(devel)", Unknown, "go1.26.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.ldVersion, tt.ldCommit, tt.bi); got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGetInThisBinary(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Commit == "" || i.GoVersion != runtime.Version() {
		t.Errorf("Get() = %+v: every field set, Go version %s", i, runtime.Version())
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Info{Version: "v1.1.0", Commit: "abc", GoVersion: "go1.26.8"}.Collector())
	want := `# HELP chatworker_build_info Always 1; the labels say which build of the worker is running.
# TYPE chatworker_build_info gauge
chatworker_build_info{commit="abc",go_version="go1.26.8",version="v1.1.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
