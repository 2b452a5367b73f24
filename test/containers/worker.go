package containers

import (
	"bytes"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Ports of the worker binary's servers inside the containers.
const (
	WorkerHTTPPort = "8080/tcp" // worker run: /metrics, /healthz, /readyz
	SimPort        = "8089/tcp" // worker sim: the chat API simulator
)

// StartWorker starts the worker image on nw, named worker-1, worker-2, ...,
// with env (e.g. NATS_URL: cluster.InternalURLs(), CHAT_API_URL) and args
// (the image's default is "run"). It waits until /healthz answers 200 on the
// worker's HTTP port.
func StartWorker(t testing.TB, nw *Network, env map[string]string, args ...string) *Container {
	t.Helper()
	return StartWorkerWithFiles(t, nw, env, nil, args...)
}

// File is a file placed in a container before it starts, the way a
// Kubernetes Secret volume mounts one. The copy is owned by root, so a mode
// readable by others (0o444) is what lets the image's non-root user read it
// (a pod gets there with fsGroup instead).
type File struct {
	Path    string // absolute, inside the container; parent directories are created
	Content []byte
	Mode    int64
}

// StartWorkerWithFiles is StartWorker with files copied into the container
// before it starts (e.g. credentials named by GOSQUARED_API_KEY_FILE).
func StartWorkerWithFiles(t testing.TB, nw *Network, env map[string]string, files []File, args ...string) *Container {
	t.Helper()
	var cf []testcontainers.ContainerFile
	for _, f := range files {
		cf = append(cf, testcontainers.ContainerFile{Reader: bytes.NewReader(f.Content), ContainerFilePath: f.Path, FileMode: f.Mode})
	}
	return start(t, nw, request{
		image:   WorkerImage(t),
		name:    nw.nextName("worker"),
		env:     env,
		cmd:     args,
		files:   cf,
		ports:   []string{WorkerHTTPPort},
		waitFor: wait.ForHTTP("/healthz").WithPort(WorkerHTTPPort).WithStartupTimeout(time.Minute),
	})
}

// StartSim starts the chat API simulator (worker sim --listen 0.0.0.0:8089
// --rate-per-minute 0, then args) on nw, named sim-1, ..., and waits until its
// /_sim/stats answers. Point a worker at it with CHAT_API_URL: SimAPIURL(sim).
// `worker sim` defaults to the API's budget (750 calls a minute); the system
// tests measure the worker, so it is off unless args set --rate-per-minute.
func StartSim(t testing.TB, nw *Network, args ...string) *Container {
	t.Helper()
	return start(t, nw, request{
		image:   WorkerImage(t),
		name:    nw.nextName("sim"),
		cmd:     append([]string{"sim", "--listen", "0.0.0.0:8089", "--rate-per-minute", "0"}, args...),
		ports:   []string{SimPort},
		waitFor: wait.ForHTTP("/_sim/stats").WithPort(SimPort).WithStartupTimeout(time.Minute),
	})
}

// SimAPIURL is the Chat API base URL of a simulator started by StartSim, for
// containers on its network (CHAT_API_URL of a worker).
func SimAPIURL(sim *Container) string { return "http://" + sim.Name + ":8089/chat/v1" }
