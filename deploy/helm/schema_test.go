package helm

import (
	"strings"
	"testing"
)

// TestSchemaRejects: values.schema.json stops a mistyped value at `helm
// install` (the render validates as Helm does), with a message naming it,
// instead of a worker that fails at start or, worse, runs misconfigured.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		values string
		names  string // in the error
	}{
		{"replica: 3", "replica"},
		{"worker: {concurency: 32}", "concurency"},
		{"worker: {concurrency: \"64\"}", "concurrency"},
		{"worker: {concurrency: 0}", "concurrency"},
		{"worker: {shutdownGrace: 20}", "shutdownGrace"},
		{"worker: {shutdownGrace: 20 seconds}", "shutdownGrace"},
		{"worker: {logLevel: verbose}", "logLevel"},
		{"worker: {perChatOrder: \"false\"}", "perChatOrder"},
		{"worker: {maxDeliver: -2}", "maxDeliver"},
		{"worker: {retry: {maxElapsed: 1 hour}}", "maxElapsed"},
		{"worker: {extraEnv: {OTEL_SDK_DISABLED: true}}", "OTEL_SDK_DISABLED"},
		{"worker: {extraEnv: {\"not a name\": x}}", "not a name"},
		{"retention: {dlqMaxBytes: 1GiB}", "dlqMaxBytes"},
		{"retention: {commandsMaxAge: 7d}", "commandsMaxAge"},
		{"retention: {idemTTL: 48h}", "idemTTL"},
		{"nats: {url: nats.nats:4222}", "url"},
		{"nats: {streamReplicas: 0}", "streamReplicas"},
		{"nats: {credentials: {secret: x}}", "secret"},
		{"chatAPI: {existingSecret: \"\"}", "existingSecret"},
		{"chatAPI: {url: api.gosquared.com}", "url"},
		{"image: {pullPolicy: always}", "pullPolicy"},
		{"image: {digest: \"sha256:abc\"}", "digest"},
		{"autoscaling: {mode: KEDA}", "mode"},
		{"autoscaling: {keda: {lagThreshold: \"500\"}}", "lagThreshold"},
		{"autoscaling: {keda: {maxReplicas: 0}}", "maxReplicas"},
		{"autoscaling: {hpa: {targetCPUUtilization: 160}}", "targetCPUUtilization"},
		{"resources: {requests: {cpu: 100 m}}", "cpu"},
		{"resources: {request: {cpu: 100m}}", "request"},
		{"podDisruptionBudget: {maxUnavailable: half}", "maxUnavailable"},
		{"export: {enabled: \"false\"}", "enabled"},
		{"export: {bucket: chat exports}", "bucket"},
		{"monitoring: {podMonitor: {enabled: yes please}}", "enabled"},
		{"monitoring: {grafana: {enabled: true}}", "grafana"},
		{"fullnameOverride: Chat_Worker", "fullnameOverride"},
		{"console: {enabled: \"true\", auth: {header: X-Forwarded-User}}", "enabled"},
		{"console: {readonly: true}", "readonly"},
		{"console: {hideContent: yes please}", "hideContent"},
		{"console: {auth: {header: X-Forwarded-User:}}", "header"},
		{"console: {auth: {existingSecret: Console Users}}", "existingSecret"},
		{"console: {auth: {password: hunter2}}", "password"},
		{"console: {port: 80900}", "port"},
		{"console: {resources: {limits: {memory: 128 MB}}}", "memory"},
	} {
		t.Run(tc.values, func(t *testing.T) {
			_, err := render(t, values(t, tc.values))
			if err == nil {
				t.Fatalf("rendered; want the schema to reject it")
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error %q: want a schema error naming %s", err, tc.names)
			}
		})
	}
}

// TestSchemaAccepts: what the docs and values.yaml's comments suggest
// passes, so the schema is not stricter than the chart.
func TestSchemaAccepts(t *testing.T) {
	for _, v := range []string{
		"",
		allOn,
		"podDisruptionBudget: {maxUnavailable: 50%}",
		"nats: {url: \"tls://nats-0:4222,tls://nats-1:4222\", credentials: {existingSecret: \"\"}}",
		"worker: {shutdownGrace: 1m30s, ackWait: 1.5m}",
		"resources: {requests: {cpu: 0.5, memory: 1Gi}, limits: {cpu: 2, memory: 1G}}",
		"autoscaling: {mode: none}\nreplicas: 0",
		"console: {enabled: true, auth: {header: X-Forwarded-User}, natsCredentials: {existingSecret: \"\"}}",
	} {
		if _, err := render(t, values(t, v)); err != nil {
			t.Errorf("values %q: %v", v, err)
		}
	}
}
