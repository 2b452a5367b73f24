package k8s

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatworker/worker/deploy/k8s/k8stest"
)

// TestManifestsDecodeStrictly reads every YAML file under deploy/k8s.
func TestManifestsDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := k8stest.SplitYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, doc := range docs {
			if _, err := k8stest.DecodeStrict(doc); err != nil {
				t.Errorf("%s, document %d: %v", path, i+1, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("decoded %d documents: are the manifests where this test looks?", n)
	}
}

// TestBuild builds the base, each overlay, and production with the HPA
// fallback, and checks the result against the code.
func TestBuild(t *testing.T) {
	code := k8stest.ReadCode(t, repoRoot)
	withHPA := t.TempDir()
	// Kustomize takes only relative paths to other kustomizations.
	rel := func(p string) string {
		a, err := filepath.Abs(p)
		if err == nil {
			a, err = filepath.Rel(withHPA, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	kust := fmt.Sprintf("resources:\n  - %s\ncomponents:\n  - %s\n", rel("overlays/production"), rel("components/hpa-fallback"))
	if err := os.WriteFile(filepath.Join(withHPA, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	withMonitoring := t.TempDir()
	kust = fmt.Sprintf("resources:\n  - %s\ncomponents:\n  - %s\n", relTo(t, withMonitoring, "overlays/production"), relTo(t, withMonitoring, "components/monitoring"))
	if err := os.WriteFile(filepath.Join(withMonitoring, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"base":                  "base",
		"local":                 "overlays/local",
		"production":            "overlays/production",
		"production+hpa":        withHPA,
		"production+monitoring": withMonitoring,
	} {
		t.Run(name, func(t *testing.T) {
			b := k8stest.Kustomize(t, dir)
			k8stest.CheckBuild(t, code, b, name == "production+hpa")
			if name == "local" {
				k8stest.CheckSecretsCreated(t, b)
			}
			if name == "production+monitoring" {
				k8stest.CheckMonitoring(t, b)
			}
		})
	}
}

// relTo is path p (relative to this directory) as seen from dir: kustomize
// takes only relative paths to other kustomizations.
func relTo(t *testing.T, dir, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err == nil {
		a, err = filepath.Rel(dir, a)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}
