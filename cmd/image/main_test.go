package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestImageTag(t *testing.T) {
	tests := []struct{ version, want string }{
		{"v1.1.0", "v1.1.0"},
		{"v1.1.0-3-g057e6a7-dirty", "v1.1.0-3-g057e6a7-dirty"},
		{"057e6a7", "057e6a7"},
		{"v0.0.0-20260510120000-057e6a76387a+dirty", "v0.0.0-20260510120000-057e6a76387a-dirty"},
		{"", "dev"},
		{"-.", "dev"},
		{".v1", "v1"},
		{strings.Repeat("a", 200), strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		if got := imageTag(tt.version); got != tt.want {
			t.Errorf("imageTag(%q) = %q, want %q", tt.version, got, tt.want)
		}
	}
}

func TestLdflags(t *testing.T) {
	got := stamp{Version: "v1.1.0", Commit: "abc-dirty"}.ldflags()
	want := "-s -w -X github.com/chatworker/worker/internal/version.version=v1.1.0 -X github.com/chatworker/worker/internal/version.commit=abc-dirty"
	if got != want {
		t.Errorf("ldflags = %q, want %q", got, want)
	}
	if got := (stamp{}).ldflags(); got != "-s -w" {
		t.Errorf("nothing to stamp: ldflags = %q", got)
	}
}

// TestProductionTagIsARelease: the production overlay pins a tag that a
// build of a release produces (git tag vX.Y.Z gives the image tag vX.Y.Z),
// not latest or a name no build makes.
func TestProductionTagIsARelease(t *testing.T) {
	data, err := os.ReadFile("../../deploy/k8s/overlays/production/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Images []struct {
			Name, NewName, NewTag, Digest string
		} `json:"images"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	release := regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	for _, img := range k.Images {
		if img.Digest != "" {
			continue
		}
		if !release.MatchString(img.NewTag) || imageTag(img.NewTag) != img.NewTag {
			t.Errorf("image %s: tag %q is not one go run ./cmd/image gives a release (vX.Y.Z)", img.Name, img.NewTag)
		}
	}
}
