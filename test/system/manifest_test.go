package system

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/test/containers"
)

// TestWorkerRunsWithManifestEnv starts the worker image with the environment
// deploy/k8s/base gives the worker container (the ConfigMap's literals, then
// the Deployment's env) and checks that it processes a command. Only what
// must point at this test's world is changed: NATS_URL and CHAT_API_URL; the
// API credentials are files at the paths the manifest names, as its Secret
// volume would mount them; NATS_CREDS is dropped, since the test cluster has
// no accounts (deploy/nats has its own test for the permissions).
func TestWorkerRunsWithManifestEnv(t *testing.T) {
	containers.RequireDocker(t)
	env := manifestEnv(t)
	for _, k := range []string{"NATS_URL", "CHAT_API_URL", "GOSQUARED_API_KEY_FILE", "GOSQUARED_SITE_TOKEN_FILE", "WORKER_STREAM_REPLICAS"} {
		if env[k] == "" {
			t.Fatalf("the manifests no longer set %s for the worker; this test relies on it", k)
		}
	}
	files := []containers.File{
		{Path: env["GOSQUARED_API_KEY_FILE"], Content: []byte("manifest-test-key\n"), Mode: 0o444},
		{Path: env["GOSQUARED_SITE_TOKEN_FILE"], Content: []byte("GSN-000000-M\n"), Mode: 0o444},
	}
	delete(env, "NATS_CREDS")

	// WORKER_STREAM_REPLICAS is 3 in the manifests: it takes a 3-node cluster.
	cluster := containers.StartNATSCluster(t, 3)
	sim := containers.StartSim(t, cluster.Network, "--honour-idempotency-key")
	env["NATS_URL"] = cluster.InternalURLs()
	env["CHAT_API_URL"] = containers.SimAPIURL(sim)
	t.Logf("worker env from deploy/k8s/base (NATS_URL, CHAT_API_URL overridden; NATS_CREDS dropped): %v", env)
	worker := containers.StartWorkerWithFiles(t, cluster.Network, env, files)

	js := connect(t, cluster.ClientURLs(t))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd, err := actions.Publish(ctx, js, contract.Send{ID: "manifest-env-1", ChatID: "manifest-chat", Content: "hello from the manifest's env"}, contract.Subjects{})
	if err != nil {
		t.Fatal(err)
	}

	result := waitResult(t, js, "chat.results.send.manifest-chat")
	if result.ID != cmd.ID || result.Status != "succeeded" {
		t.Fatalf("result %+v, want %s succeeded", result, cmd.ID)
	}

	// The streams were provisioned as the manifests ask (R3).
	s, err := js.Stream(ctx, "CHAT_COMMANDS")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s.CachedInfo().Config.Replicas), env["WORKER_STREAM_REPLICAS"]; got != want {
		t.Errorf("CHAT_COMMANDS has %s replicas, the manifests ask for %s", got, want)
	}
	// The effect reached the simulator with the credentials from the files.
	status, body := get(t, "http://"+sim.HostAddr(t, containers.SimPort)+"/_sim/effects")
	if status != http.StatusOK || !strings.Contains(body, `"idempotency_key":"manifest-env-1"`) {
		t.Fatalf("GET /_sim/effects: %d %s", status, body)
	}
	// JSON logs, as WORKER_LOG_FORMAT=json asks, and no credential in them.
	logs := worker.Logs(t)
	if !strings.Contains(logs, `"msg":"worker started"`) {
		t.Errorf("worker log is not the JSON the manifest asks for:\n%s", logs)
	}
	if strings.Contains(logs, "manifest-test-key") {
		t.Errorf("worker log contains the API key")
	}
}

// manifestEnv is the environment of the worker container in deploy/k8s/base:
// the ConfigMap generator's literals (envFrom), then the container's env
// entries with a value, which Kubernetes lets override envFrom.
func manifestEnv(t *testing.T) map[string]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	base := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "k8s", "base")

	var kust struct {
		ConfigMapGenerator []struct {
			Name     string   `json:"name"`
			Literals []string `json:"literals"`
		} `json:"configMapGenerator"`
	}
	readYAML(t, filepath.Join(base, "kustomization.yaml"), &kust)
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name    string `json:"name"`
						EnvFrom []struct {
							ConfigMapRef *struct {
								Name string `json:"name"`
							} `json:"configMapRef"`
						} `json:"envFrom"`
						Env []struct {
							Name  string `json:"name"`
							Value string `json:"value"`
						} `json:"env"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	readYAML(t, filepath.Join(base, "deployment.yaml"), &dep)

	env := map[string]string{}
	found := false
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != "worker" {
			continue
		}
		found = true
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef == nil {
				continue
			}
			for _, g := range kust.ConfigMapGenerator {
				if g.Name != from.ConfigMapRef.Name {
					continue
				}
				for _, l := range g.Literals {
					k, v, ok := strings.Cut(l, "=")
					if !ok {
						t.Fatalf("kustomization.yaml: literal %q is not KEY=VALUE", l)
					}
					env[k] = v
				}
			}
		}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
	}
	if !found {
		t.Fatal("deployment.yaml has no container named worker")
	}
	return env
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
