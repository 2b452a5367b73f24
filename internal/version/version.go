package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set with -ldflags "-X github.com/chatworker/worker/internal/version.version=v1.2.3
// -X github.com/chatworker/worker/internal/version.commit=abc123" by the
// image build (cmd/buildimage), which knows the git state even when the Go
// toolchain cannot stamp it (a build from a source tarball, or GOFLAGS=-buildvcs=false).
var (
	version string
	commit  string
)

// Unknown stands for a field neither -ldflags nor the build info supplies.
const Unknown = "unknown"

// Info describes one build.
type Info struct {
	Version   string `json:"version"`    // v1.2.3, a pseudo-version, or (devel)
	Commit    string `json:"commit"`     // the VCS revision, with -dirty when built from a modified tree
	GoVersion string `json:"go_version"` // the toolchain that built the binary
}

// String is the one line `worker version` prints.
func (i Info) String() string {
	return fmt.Sprintf("worker %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}

// Get reads the running binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers the -ldflags values, then the build info, field by field:
// ldflags are what a release sets on purpose, the build info is what the
// toolchain saw.
func resolve(ldVersion, ldCommit string, bi *debug.BuildInfo) Info {
	i := Info{Version: ldVersion, Commit: ldCommit, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		if i.Version == "" && bi.Main.Version != "" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" {
				if len(rev) > 12 {
					rev = rev[:12]
				}
				if dirty {
					rev += "-dirty"
				}
				i.Commit = rev
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	if i.Commit == "" {
		i.Commit = Unknown
	}
	return i
}

// Collector is chatworker_build_info: always 1, with the build in its labels,
// so a dashboard can show which versions run and an alert can join on them.
func (i Info) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   "chatworker",
		Name:        "build_info",
		Help:        "Always 1; the labels say which build of the worker is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "go_version": i.GoVersion},
	}, func() float64 { return 1 })
}
