package containers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// ContentLabel is set on every image built here to the sha256 of its build
// context (the static binary, the Dockerfile and any config files). An image
// whose label matches is reused instead of rebuilt, across test binaries and
// runs; a changed binary or Dockerfile gives a new hash and a rebuild.
const ContentLabel = "org.chatworker.test.content-sha256"

// imageSpec says how to build one image: which package to compile, and which
// repository files (relative to the module root) join it in the context.
type imageSpec struct {
	ref        string            // repo:tag
	pkg        string            // go build target
	binary     string            // file name of the binary in the context
	dockerfile string            // relative to the module root
	files      map[string]string // context name -> path relative to the module root
	dirs       []string          // empty directories to create in the context
	tags       []string          // go build -tags
}

var (
	natsSpec = imageSpec{
		ref:        "chatworker-nats:test",
		pkg:        "github.com/nats-io/nats-server/v2",
		binary:     "nats-server",
		dockerfile: "deploy/nats/Dockerfile",
		files: map[string]string{
			"nats-server.conf": "deploy/nats/nats-server.conf",
			"cluster.conf":     "deploy/nats/cluster.conf",
		},
		dirs: []string{"data"},
		// The image has no /usr/share/zoneinfo: a schedule's time zone
		// (Nats-Schedule-Time-Zone) loads from the zone data this tag
		// embeds, as deploy/nats/Dockerfile's build line has it.
		tags: []string{"timetzdata"},
	}
	workerSpec = imageSpec{
		ref:        "chatworker-worker:test",
		pkg:        "github.com/chatworker/worker/cmd/worker",
		binary:     "worker",
		dockerfile: "Dockerfile",
		// The same context as go run ./cmd/image: the Dockerfile makes /data
		// and /tmp from it.
		dirs: []string{"emptydir"},
	}

	natsImage   = sync.OnceValues(func() (*built, error) { return buildImage(natsSpec) })
	workerImage = sync.OnceValues(func() (*built, error) { return buildImage(workerSpec) })
)

// built is the outcome of buildImage, kept for the first test to log.
type built struct {
	ref     string
	reused  bool          // an image with the same content label existed
	goBuild time.Duration // compiling the binary
	docker  time.Duration // building the image (zero when reused)
	logged  sync.Once
}

func (b *built) log(t testing.TB) {
	b.logged.Do(func() {
		if b.reused {
			t.Logf("image %s: go build %v, image reused (content label matched)", b.ref, b.goBuild.Round(time.Millisecond))
			return
		}
		t.Logf("image %s: go build %v, docker build %v", b.ref, b.goBuild.Round(time.Millisecond), b.docker.Round(time.Millisecond))
	})
}

// NATSImage returns the reference of the NATS server image, building it (or
// finding it already built) on first use in this test binary. The reference
// names the image's content (chatworker-nats:<hash>); chatworker-nats:test
// points at the latest build, for people.
func NATSImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	b, err := natsImage()
	if err != nil {
		t.Fatal(err)
	}
	b.log(t)
	return b.ref
}

// WorkerImage returns the reference of the worker image built from the
// repository's Dockerfile and ./cmd/worker, on first use in this test binary.
func WorkerImage(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	b, err := workerImage()
	if err != nil {
		t.Fatal(err)
	}
	b.log(t)
	return b.ref
}

func buildImage(spec imageSpec) (*built, error) {
	p, err := provider()
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatworker-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	b := &built{}
	start := time.Now()
	if err := goBuild(ctx, root, spec.pkg, filepath.Join(dir, spec.binary), spec.tags); err != nil {
		return nil, err
	}
	b.goBuild = time.Since(start)
	files := map[string]string{"Dockerfile": spec.dockerfile}
	for name, src := range spec.files {
		files[name] = src
	}
	for name, src := range files {
		if err := copyFile(filepath.Join(root, src), filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	for _, d := range spec.dirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	sum, err := hashContext(dir)
	if err != nil {
		return nil, err
	}

	// The image is run by a tag naming its content, not by spec.ref: another
	// test process (a developer's go test ./... next to this one) may move
	// spec.ref to a different build at any moment, but never this tag.
	repo, tag, _ := strings.Cut(spec.ref, ":")
	b.ref = repo + ":" + sum[:16]
	cli := p.Client()
	if img, err := cli.ImageInspect(ctx, b.ref); err == nil && img.Config != nil && img.Config.Labels[ContentLabel] == sum {
		b.reused = true
		return b, nil
	}
	old, _ := cli.ImageInspect(ctx, spec.ref)

	var buildLog bytes.Buffer
	req := &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context:        dir,
		Dockerfile:     "Dockerfile",
		Repo:           repo,
		Tag:            tag,
		KeepImage:      true,
		BuildLogWriter: &buildLog,
		BuildOptionsModifier: func(o *client.ImageBuildOptions) {
			// The API build endpoint speaks BuildKit only through a session
			// that testcontainers does not open; the classic builder handles
			// FROM scratch + COPY on every engine, 20.10 included.
			o.Version = build.BuilderV1
			o.Labels = map[string]string{ContentLabel: sum}
			o.Tags = []string{b.ref} // after spec.ref, which testcontainers puts first
		},
	}}
	start = time.Now()
	if _, err := p.BuildImage(ctx, req); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", spec.ref, err, buildLog.String())
	}
	b.docker = time.Since(start)
	// The build that spec.ref named before is superseded: untag it and drop
	// it, with the untagged parent layers the classic builder left (one per
	// Dockerfile step), so repeated runs do not fill the disk. An image
	// still backing a container stays.
	if oldSum := labelOf(old); oldSum != sum && old.ID != "" {
		if len(oldSum) >= 16 {
			_, _ = cli.ImageRemove(ctx, repo+":"+oldSum[:16], client.ImageRemoveOptions{PruneChildren: true})
		}
		// Left untagged (built before content tags, or by hand): by ID.
		_, _ = cli.ImageRemove(ctx, old.ID, client.ImageRemoveOptions{PruneChildren: true})
	}
	return b, nil
}

func labelOf(img client.ImageInspectResult) string {
	if img.Config == nil {
		return ""
	}
	return img.Config.Labels[ContentLabel]
}

// goBuild compiles a static linux binary for the daemon's usual architecture
// (the host's). -trimpath and -buildvcs=false keep the output identical for
// identical sources, which is what lets the content label find a cache hit.
func goBuild(ctx context.Context, root, pkg, out string, tags []string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags", strings.Join(tags, ","), "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the module: go env GOMOD is %q", gomod)
	}
	return filepath.Dir(gomod), nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// hashContext hashes every file name and content in dir, in walk order
// (lexical), so the same context always gives the same sum.
func hashContext(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
