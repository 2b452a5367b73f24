package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

const versionPkg = "github.com/chatworker/worker/internal/version"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("t", "chatworker", "image repository; tagged :<version> and :latest")
	ver := fs.String("version", "", "version to stamp and tag (default: git describe --tags --always --dirty)")
	arch := fs.String("arch", "", "GOARCH of the image (default: the host's)")
	dryRun := fs.Bool("n", false, "prepare the build context and print the docker command without running it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := gitOutput(ctx, "", "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("run inside a clone of the repository: %w", err)
	}
	st := stamp{Version: *ver}
	if st.Version == "" {
		st.Version, _ = gitOutput(ctx, root, "describe", "--tags", "--always", "--dirty")
	}
	st.Commit, _ = gitOutput(ctx, root, "rev-parse", "--short=12", "HEAD")
	if st.Commit != "" {
		if out, _ := gitOutput(ctx, root, "status", "--porcelain", "--untracked-files=no"); out != "" {
			st.Commit += "-dirty"
		}
	}
	tag := imageTag(st.Version)

	dir, err := os.MkdirTemp("", "chatworker-image-")
	if err != nil {
		return err
	}
	if !*dryRun {
		defer os.RemoveAll(dir)
	}
	if err := Context(ctx, root, dir, st, *arch); err != nil {
		return err
	}
	docker := []string{"build", "-t", *repo + ":" + tag, "-t", *repo + ":latest", dir}
	fmt.Fprintf(stderr, "version %s, commit %s; docker %s\n", orUnknown(st.Version), orUnknown(st.Commit), strings.Join(docker, " "))
	if *dryRun {
		return nil
	}
	cmd := exec.CommandContext(ctx, "docker", docker...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker build: %w", err)
	}
	fmt.Fprintf(stdout, "built %s:%s (and :latest)\n", *repo, tag)
	return nil
}

// stamp is what -ldflags writes into internal/version.
type stamp struct{ Version, Commit string }

// ldflags strips the symbol table (a smaller image) and stamps the build.
func (s stamp) ldflags() string {
	f := "-s -w"
	if s.Version != "" {
		f += " -X " + versionPkg + ".version=" + s.Version
	}
	if s.Commit != "" {
		f += " -X " + versionPkg + ".commit=" + s.Commit
	}
	return f
}

// Context fills dir with the image's build context: the static binary
// "worker", the Dockerfile and the empty directory "emptydir" from which the
// Dockerfile makes /data (the volume for the embedded server's storage) and
// /tmp, both owned by the runtime user.
func Context(ctx context.Context, root, dir string, st stamp, arch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", st.ldflags(),
		"-o", filepath.Join(dir, "worker"), "./cmd/worker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if arch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+arch)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	return os.Mkdir(filepath.Join(dir, "emptydir"), 0o755)
}

var notInTag = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// imageTag turns a version into a Docker tag: at most 128 characters of
// [A-Za-z0-9_.-], not starting with . or -. A release (git tag v1.1.0) keeps
// its name, which is what the production overlay pins.
func imageTag(v string) string {
	if v == "" {
		return "dev"
	}
	t := notInTag.ReplaceAllString(v, "-")
	t = strings.TrimLeft(t, ".-")
	if len(t) > 128 {
		t = t[:128]
	}
	if t == "" {
		return "dev"
	}
	return t
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
