package system

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/test/containers"
)

// TestWorkerImageServesSim: the worker image starts as a non-root static
// binary and its sim command serves the simulator on the network.
func TestWorkerImageServesSim(t *testing.T) {
	containers.RequireDocker(t)
	nw := containers.NewNetwork(t)
	sim := containers.StartSim(t, nw)

	status, body := get(t, "http://"+sim.HostAddr(t, containers.SimPort)+"/_sim/stats")
	if status != http.StatusOK || !json.Valid([]byte(body)) {
		t.Fatalf("GET /_sim/stats: %d %s", status, body)
	}
	if log := sim.Logs(t); !strings.Contains(log, "simulator listening on") {
		t.Errorf("sim log does not say where it listens:\n%s", log)
	}
	// No shell in the image, but the binary itself can be executed.
	if _, out := sim.Exec(t, "/worker", "sim", "--help"); !strings.Contains(out, "usage: worker sim") {
		t.Errorf("/worker sim --help in the container printed:\n%s", out)
	}
}

// TestWorkerExecutesCommandOnCluster runs the deployment in miniature: a
// 3-node JetStream cluster, the simulator as the Chat API, and a worker
// container; a command published from outside comes back as a result.
func TestWorkerExecutesCommandOnCluster(t *testing.T) {
	containers.RequireDocker(t)
	cluster := containers.StartNATSCluster(t, 3)
	sim := containers.StartSim(t, cluster.Network)
	worker := containers.StartWorker(t, cluster.Network, map[string]string{
		"NATS_URL":             cluster.InternalURLs(),
		"CHAT_API_URL":         containers.SimAPIURL(sim),
		"GOSQUARED_API_KEY":    "system-test-key",
		"GOSQUARED_SITE_TOKEN": "GSN-000000-T",
		"WORKER_LOG_FORMAT":    "json",
	})
	readyz := "http://" + worker.HostAddr(t, containers.WorkerHTTPPort) + "/readyz"
	waitFor(t, time.Minute, func() error {
		if status, body := get(t, readyz); status != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", status, body)
		}
		return nil
	})

	js := connect(t, cluster.ClientURLs(t))

	const id = "system-test-send-1"
	cmd := &nats.Msg{
		Subject: "chat.commands.send.abc123",
		Data:    []byte(`{"id":"` + id + `","type":"send","chat_id":"abc123","content":"Hello from the system test"}`),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, cmd); err != nil {
		t.Fatalf("publish command: %v", err)
	}

	result := waitResult(t, js, "chat.results.send.abc123")
	if result.ID != id || result.Status != "succeeded" {
		t.Fatalf("result: %+v", result)
	}
}

// waitResult waits for the last result on subject.
func waitResult(t *testing.T, js jetstream.JetStream, subject string) contract.Result {
	t.Helper()
	var result contract.Result
	waitFor(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "CHAT_RESULTS")
		if err != nil {
			return err
		}
		msg, err := s.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("no result yet: %w", err)
		}
		return json.Unmarshal(msg.Data, &result)
	})
	return result
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}
