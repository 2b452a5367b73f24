package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/version"
)

func TestVersionCommand(t *testing.T) {
	want := version.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), args, nil, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			if stdout.String() != want || stderr.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want %q on stdout only", stdout.String(), stderr.String(), want)
			}
		})
	}
}

// TestOperatorMetrics: the startup log line says which build runs, and
// /metrics serves the build, readiness (following /readyz) and the backlog
// gauges the shipped alerts use.
func TestOperatorMetrics(t *testing.T) {
	srv := natstest.RunServer(t)
	t.Setenv("GOSQUARED_API_KEY", "k")
	t.Setenv("GOSQUARED_SITE_TOKEN", "s")
	logs, get := startRun(t, srv.ClientURL(), simURL(t))

	v := version.Get()
	eventuallyOK(t, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			var e struct {
				Msg, Version, Commit string
				GoVersion            string `json:"go_version"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "worker started" {
				if e.Version != v.Version || e.Commit != v.Commit || e.GoVersion != v.GoVersion {
					return fmt.Errorf("startup line %s lacks the build %+v", line, v)
				}
				return nil
			}
		}
		return errors.New("no startup line yet")
	})
	metrics := func() string {
		_, body := get("/metrics")
		return body
	}
	buildInfo := fmt.Sprintf(`chatworker_build_info{commit=%q,go_version=%q,version=%q} 1`, v.Commit, v.GoVersion, v.Version)
	eventuallyOK(t, func() error {
		body := metrics()
		for _, want := range []string{buildInfo, "\nchatworker_ready 1\n", "\nchatworker_oldest_command_age_seconds 0\n", "\nchatworker_dead_letters_stored 0\n"} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %q", want)
			}
		}
		return nil
	})

	restart := natstest.StopServer(t, srv)
	eventuallyOK(t, func() error {
		if body := metrics(); !regexp.MustCompile(`(?m)^chatworker_ready 0$`).MatchString(body) {
			return errors.New("chatworker_ready is not 0 while NATS is down")
		}
		return nil
	})
	restart()
}
