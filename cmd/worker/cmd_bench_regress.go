package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/chatworker/worker/cmd/worker/bench"
)

// runRegress runs `worker bench --against`: an older build against the
// current one, round by round beside the minimal loop. `worker bench` alone
// compares the worker with loops of the same build, which cannot show the
// worker getting slower than it was.
func runRegress(ctx context.Context, o bench.RegressOptions, against, current, jsonPath string, args []string, stdout, stderr io.Writer) error {
	var err error
	if current == "" {
		if current, err = os.Executable(); err != nil {
			return fmt.Errorf("finding this binary to compare: %w (or pass --current)", err)
		}
	} else if err := checkBinary(current); err != nil {
		return usageError{fmt.Errorf("--current: %w", err)}
	}
	old, cleanup, err := olderBuild(ctx, against, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	o.Old, o.New = old, current
	// The minimal loop is this binary's, whichever builds are compared.
	if o.Loop, err = os.Executable(); err != nil {
		return fmt.Errorf("finding this binary to run the minimal loop: %w", err)
	}

	command := "worker " + strings.Join(append([]string{"bench"}, args...), " ")
	fmt.Fprintf(stdout, "Machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "Command: %s\n", command)
	fmt.Fprintln(stdout, "NATS: embedded nats-server in this process, over TCP loopback; API: the simulator over HTTP on loopback; workers: `worker run` in their own process; the minimal loop: `worker bench --minimal-loop` in its own process; the limit loop: in this process.")
	start := time.Now()
	res, err := bench.Regress(ctx, o, func(r bench.RegressRound) {
		fmt.Fprintf(stderr, "round %-3d limit %7.0f  minimal %7.0f  floor %7.0f  old %7.0f  new %7.0f cmd/s  new/minimal %.2f  new/old %.2f  CPU/cmd minimal %v old %v new %v, server %v and %v  (%v)\n",
			r.Round, r.Limit, r.Minimal, r.Floor, r.Old, r.New, r.New/r.Minimal, r.NewOverOld(), r.MinimalCPU, r.OldCPU, r.NewCPU, r.OldServerCPU, r.NewServerCPU, time.Since(start).Round(time.Second))
	})
	if len(res.Rounds) > 0 {
		res.Old = against // the name the user gave, not a temporary path
		bench.WriteRegressTable(stdout, res)
		fmt.Fprintf(stdout, "\n%d rounds in %v.\n", len(res.Rounds), time.Since(start).Round(time.Second))
	}
	if jsonPath != "" && len(res.Rounds) > 0 {
		b, jerr := json.MarshalIndent(report{Machine: cpuModel(), Cores: runtime.NumCPU(), Go: runtime.Version(), Command: command, Regress: &res}, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// olderBuild returns the worker binary for --against: the path itself when
// it names a file, else the git revision built in a temporary worktree of
// the repository around the current directory.
func olderBuild(ctx context.Context, against string, stderr io.Writer) (string, func(), error) {
	nothing := func() {}
	if _, err := os.Stat(against); err == nil {
		if err := checkBinary(against); err != nil {
			return "", nothing, usageError{fmt.Errorf("--against: %w", err)}
		}
		return against, nothing, nil
	}
	rev, err := gitOutput(ctx, "", "rev-parse", "--verify", "--quiet", against+"^{commit}")
	if err != nil {
		return "", nothing, usageError{fmt.Errorf("--against %q: neither a file nor a git revision of the repository here", against)}
	}
	dir, err := os.MkdirTemp("", "worker-against-")
	if err != nil {
		return "", nothing, err
	}
	tree := filepath.Join(dir, "src")
	cleanup := func() {
		_, _ = gitOutput(context.WithoutCancel(ctx), "", "worktree", "remove", "--force", tree)
		os.RemoveAll(dir)
	}
	if _, err := gitOutput(ctx, "", "worktree", "add", "--detach", tree, rev); err != nil {
		cleanup()
		return "", nothing, err
	}
	bin := filepath.Join(dir, "worker")
	fmt.Fprintf(stderr, "building %s (%s) ...\n", against, rev[:min(12, len(rev))])
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/worker")
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nothing, fmt.Errorf("building %s: %w\n%s", against, err, out)
	}
	return bin, cleanup, nil
}

// checkBinary fails unless path is a regular, executable file.
func checkBinary(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
