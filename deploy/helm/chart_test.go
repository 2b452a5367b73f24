package helm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	batchv1 "k8s.io/api/batch/v1"
	networkingv1 "k8s.io/api/networking/v1"
	kusttypes "sigs.k8s.io/kustomize/api/types"

	"github.com/chatworker/worker/deploy/k8s/k8stest"
)

const (
	chartDir = "chatworker"
	repoRoot = "../.."
	k8sDir   = "../k8s"
	// The release and namespace of the Kustomize overlays, so object names
	// compare as they are.
	release   = "chat-worker"
	namespace = "chat-worker"
)

// allOn turns every option on (autoscaling takes one mode at a time: hpa
// here, keda in the defaults, none in TestRenderModes).
const allOn = `
image: {repository: registry.example.com/chatworker/worker, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", pullPolicy: Always}
imagePullSecrets: [{name: registry}]
nats:
  url: nats://nats-a:4222,nats://nats-b:4222
  credentials: {existingSecret: worker-nats, key: worker.creds}
  streamReplicas: 1
  namespace: messaging
  port: 4223
chatAPI: {url: "http://chatsim:8089/chat/v1", existingSecret: worker-api, apiKeyKey: key, siteTokenKey: token, projectsKey: projects}
worker:
  concurrency: 32
  httpPort: 9090
  logLevel: debug
  logFormat: console
  shutdownGrace: 30s
  terminationGracePeriodSeconds: 60
  ackWait: 45s
  maxDeliver: 20
  perChatOrder: false
  subjectPrefix: acme.chat
  idempotencyBucket: ACME_IDEM
  idempotencyLease: 2m
  exportBucket: ACME_EXPORTS
  retry: {maxAttempts: 5, maxElapsed: 30m, initialInterval: 2s, maxInterval: 5m, inProcessMax: 10s}
  extraEnv: {WORKER_EXPORT_CONCURRENCY: "4"}
retention:
  idempotencyTTL: 48h
  commandsMaxAge: 72h
  resultsMaxAge: 24h
  duplicateWindow: 5m
  dlqMaxAge: 1440h
  dlqMaxMsgs: 100000
  dlqMaxBytes: 2147483648
autoscaling: {mode: hpa, hpa: {minReplicas: 3, maxReplicas: 12, targetCPUUtilization: 70, scaleDownStabilizationSeconds: 600}}
resources: {requests: {cpu: 250m, memory: 256Mi}, limits: {memory: 512Mi}}
podAnnotations: {example.com/team: chat}
podLabels: {example.com/tier: backend}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: chat, effect: NoSchedule}]
affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: tier, operator: In, values: [chat]}]}}]}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/component: worker}}}]
service: {annotations: {example.com/scrape: "yes"}}
podDisruptionBudget: {enabled: true, maxUnavailable: 2}
networkPolicy: {enabled: true, extraEgress: [{to: [{podSelector: {matchLabels: {app: otel}}}], ports: [{port: 4318, protocol: TCP}]}]}
provision: {enabled: true, backoffLimit: 3, ttlSecondsAfterFinished: 600}
export: {enabled: true, schedule: "30 3 * * *", timeZone: Europe/London, bucket: ACME_CHAT_EXPORTS, checkpointBucket: ACME_CHECKPOINTS}
monitoring:
  podMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
  prometheusRule: {enabled: true, labels: {release: prometheus}}
  dashboard: {enabled: true}
console:
  enabled: true
  readOnly: true
  hideContent: true
  auth: {existingSecret: console-users, key: htpasswd}
  natsCredentials: {existingSecret: console-nats, key: console.creds}
  port: 9091
  resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
`

func values(t *testing.T, yamlText string) common.Values {
	t.Helper()
	v, err := common.ReadValues([]byte(yamlText))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	return ch
}

// render renders the chart as `helm template` does, schema validation
// included, and returns the manifests by template.
func render(t *testing.T, vals common.Values) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	opts := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// build renders and decodes strictly, as deploy/k8s decodes a Kustomize
// build, and also returns the hook annotation of each Job.
func build(t *testing.T, vals common.Values) (k8stest.Built, map[string]string) {
	t.Helper()
	out, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	b := k8stest.NewBuilt()
	hooks := map[string]string{}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range out {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		docs, err := k8stest.SplitYAML([]byte(out[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, doc := range docs {
			obj, err := k8stest.DecodeStrict(doc)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if obj == nil {
				continue
			}
			if j, ok := obj.(*batchv1.Job); ok {
				hooks[j.Name] = j.Annotations["helm.sh/hook"]
			}
			b.Add(obj)
		}
	}
	return b, hooks
}

func TestLint(t *testing.T) {
	for name, vals := range map[string]string{"defaults": "", "all on": allOn} {
		t.Run(name, func(t *testing.T) {
			l := lint.RunAll(chartDir, values(t, vals), namespace)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %v", m)
				} else {
					t.Logf("lint: %v", m)
				}
			}
		})
	}
}

// TestRender holds each render to deploy/k8s's checks against the code.
func TestRender(t *testing.T) {
	code := k8stest.ReadCode(t, repoRoot)
	for name, tc := range map[string]struct {
		vals string
		hpa  bool
	}{
		"defaults": {vals: ""},
		"all on":   {vals: allOn, hpa: true},
		// Header auth, and the worker's NATS credentials.
		"console behind a proxy": {vals: "console: {enabled: true, auth: {header: X-Forwarded-User}}"},
	} {
		t.Run(name, func(t *testing.T) {
			b, hooks := build(t, values(t, tc.vals))
			k8stest.CheckBuild(t, code, b, tc.hpa)
			if hooks["chat-worker-provision"] != "pre-install,pre-upgrade" {
				t.Errorf("provision Job hook %q: want pre-install,pre-upgrade", hooks["chat-worker-provision"])
			}
			if len(b.CronJobs) != 1 {
				t.Errorf("%d export CronJobs, want 1", len(b.CronJobs))
			}
			checkProvisionSettings(t, b)
			if tc.vals == allOn {
				k8stest.CheckMonitoring(t, b)
				checkAllOn(t, b)
			}
		})
	}
}

// checkProvisionSettings: the hook Job gets its settings inline (it runs
// before the ConfigMap exists); they must be the workers' own, or each
// undoes the other's consumer and stream configuration.
func checkProvisionSettings(t *testing.T, b k8stest.Built) {
	t.Helper()
	worker := k8stest.Find(t, b.Deployments, release)
	workerEnv := k8stest.EffectiveEnv(t, b, &worker.Spec.Template.Spec.Containers[0])
	provEnv := k8stest.EffectiveEnv(t, b, &b.Jobs[0].Spec.Template.Spec.Containers[0])
	for k, v := range workerEnv {
		if strings.HasPrefix(k, "GOSQUARED_") {
			continue // provision never calls the API
		}
		if provEnv[k] != v {
			t.Errorf("provision Job %s=%q, the worker has %q", k, provEnv[k], v)
		}
	}
}

func checkAllOn(t *testing.T, b k8stest.Built) {
	t.Helper()
	worker := k8stest.Find(t, b.Deployments, release)
	c := &worker.Spec.Template.Spec.Containers[0]
	env := k8stest.EffectiveEnv(t, b, c)
	for k, want := range map[string]string{
		"NATS_URL": "nats://nats-a:4222,nats://nats-b:4222", "NATS_CREDS": "/var/run/secrets/chatworker/nats/worker.creds",
		"CHAT_API_URL": "http://chatsim:8089/chat/v1", "GOSQUARED_API_KEY_FILE": "/var/run/secrets/chatworker/api/key",
		"GOSQUARED_SITE_TOKEN_FILE": "/var/run/secrets/chatworker/api/token", "GOSQUARED_PROJECTS_FILE": "/var/run/secrets/chatworker/api/projects",
		"WORKER_CONCURRENCY": "32", "WORKER_HTTP_ADDR": ":9090", "WORKER_LOG_LEVEL": "debug", "WORKER_LOG_FORMAT": "console",
		"WORKER_STREAM_REPLICAS": "1", "WORKER_SHUTDOWN_GRACE": "30s", "WORKER_ACK_WAIT": "45s", "WORKER_MAX_DELIVER": "20",
		"WORKER_PER_CHAT_ORDER": "false", "WORKER_SUBJECT_PREFIX": "acme.chat", "WORKER_IDEMPOTENCY_BUCKET": "ACME_IDEM",
		"WORKER_IDEMPOTENCY_LEASE": "2m", "WORKER_EXPORT_BUCKET": "ACME_EXPORTS", "WORKER_RETRY_MAX_ATTEMPTS": "5",
		"WORKER_RETRY_MAX_ELAPSED": "30m", "WORKER_RETRY_INITIAL_INTERVAL": "2s", "WORKER_RETRY_MAX_INTERVAL": "5m",
		"WORKER_RETRY_IN_PROCESS_MAX": "10s", "WORKER_IDEMPOTENCY_TTL": "48h", "WORKER_COMMANDS_MAX_AGE": "72h",
		"WORKER_RESULTS_MAX_AGE": "24h", "WORKER_DUPLICATE_WINDOW": "5m", "WORKER_DLQ_MAX_AGE": "1440h",
		"WORKER_DLQ_MAX_MSGS": "100000",
		// A large number must not come out as 2.147483648e+09.
		"WORKER_DLQ_MAX_BYTES":      "2147483648",
		"WORKER_EXPORT_CONCURRENCY": "4",
	} {
		if env[k] != want {
			t.Errorf("worker %s=%q, want %q", k, env[k], want)
		}
	}
	if c.Image != "registry.example.com/chatworker/worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("image %s: want the digest", c.Image)
	}
	exp := b.CronJobs[0]
	if exp.Spec.Schedule != "30 3 * * *" || exp.Spec.TimeZone == nil || *exp.Spec.TimeZone != "Europe/London" {
		t.Errorf("export schedule %q %v", exp.Spec.Schedule, exp.Spec.TimeZone)
	}
	np := policy(t, b, release)
	if len(np.Spec.Egress) != 4 || np.Spec.Egress[1].Ports[0].Port.IntValue() != 4223 ||
		np.Spec.Egress[1].To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "messaging" {
		t.Errorf("NetworkPolicy egress %+v: want NATS at messaging:4223 and the extra rule", np.Spec.Egress)
	}
	if b.PDBs[0].Spec.MaxUnavailable.IntValue() != 2 {
		t.Errorf("PDB maxUnavailable %v, want 2", b.PDBs[0].Spec.MaxUnavailable)
	}
	if b.HPAs[0].Spec.MinReplicas == nil || *b.HPAs[0].Spec.MinReplicas != 3 || b.HPAs[0].Spec.MaxReplicas != 12 {
		t.Errorf("HPA %d..%d, want 3..12", b.HPAs[0].Spec.MinReplicas, b.HPAs[0].Spec.MaxReplicas)
	}
	if b.PodMonitors[0].Labels["release"] != "prometheus" || b.Rules[0].Labels["release"] != "prometheus" {
		t.Errorf("monitoring labels: want release=prometheus on the PodMonitor and the PrometheusRule")
	}
}

// TestRenderModes: autoscaling none sets replicas; without NATS
// credentials no pod mounts or names a credentials file; each component
// can be switched off; extraEnv reaches every pod.
func TestRenderModes(t *testing.T) {
	b, _ := build(t, values(t, `
autoscaling: {mode: none}
replicas: 3
nats: {credentials: {existingSecret: ""}}
provision: {enabled: true}
export: {enabled: false}
podDisruptionBudget: {enabled: false}
networkPolicy: {enabled: false}
serviceAccount: {create: false}
worker: {extraEnv: {OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318"}}
`))
	worker := k8stest.Find(t, b.Deployments, release)
	if worker.Spec.Replicas == nil || *worker.Spec.Replicas != 3 || len(b.ScaledObjects)+len(b.HPAs) != 0 {
		t.Errorf("mode none: want replicas 3 and no autoscaler")
	}
	if len(b.CronJobs)+len(b.PDBs)+len(b.NetworkPolicies)+len(b.ServiceAccounts) != 0 {
		t.Errorf("switched off: %d CronJobs, %d PDBs, %d NetworkPolicies, %d ServiceAccounts", len(b.CronJobs), len(b.PDBs), len(b.NetworkPolicies), len(b.ServiceAccounts))
	}
	for what, tmpl := range b.Pods() {
		for _, c := range tmpl.Spec.Containers {
			env := k8stest.EffectiveEnv(t, b, &c)
			if env["NATS_CREDS"] != "" {
				t.Errorf("%s: NATS_CREDS set without credentials", what)
			}
			// Read by the OpenTelemetry SDK rather than cmd/worker, so
			// CheckBuild, which knows only cmd/worker's names, is not run
			// on this render.
			if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://otel:4318" {
				t.Errorf("%s: worker.extraEnv not passed on", what)
			}
		}
		for _, v := range tmpl.Spec.Volumes {
			if v.Name == "nats-credentials" {
				t.Errorf("%s mounts NATS credentials without a Secret", what)
			}
		}
	}
	for what, tmpl := range b.Pods() {
		if tmpl.Spec.ServiceAccountName != "default" {
			t.Errorf("serviceAccount.create false: %s runs as %q, want default", what, tmpl.Spec.ServiceAccountName)
		}
	}
}

// TestMonitoringFilesAreKustomizes: the chart's rules and dashboard are
// deploy/k8s/components/monitoring's (which cmd/worker's tests parse against
// the metrics the code exports), byte for byte. Helm reads only files inside
// the chart, and Kustomize only files under the kustomization, so the chart
// holds a copy and this test keeps it one.
func TestMonitoringFilesAreKustomizes(t *testing.T) {
	for _, name := range []string{"prometheusrule.yaml", "chatworker-dashboard.json"} {
		src := filepath.Join(k8sDir, "components/monitoring", name)
		dst := filepath.Join(chartDir, "files", name)
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: edit the Kustomize one, then cp %s %s", dst, src,
				filepath.Join("deploy/k8s/components/monitoring", name), filepath.Join("deploy/helm/chatworker/files", name))
		}
	}
}

// TestAppVersionIsProductionTag: the chart's default image is the release
// the production overlay pins.
func TestAppVersionIsProductionTag(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k8sDir, "overlays/production/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := k8stest.DecodeStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	k := obj.(*kusttypes.Kustomization)
	if len(k.Images) != 1 || k.Images[0].NewTag != loadChart(t).Metadata.AppVersion {
		t.Errorf("Chart.yaml appVersion %q, production overlay images %+v: want the same tag", loadChart(t).Metadata.AppVersion, k.Images)
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

// kustomizeBase builds deploy/k8s/base with components (hpa-fallback,
// monitoring) the way deploy/k8s's own tests build it.
func kustomizeBase(t *testing.T, components ...string) k8stest.Built {
	t.Helper()
	if len(components) == 0 {
		return k8stest.Kustomize(t, filepath.Join(k8sDir, "base"))
	}
	dir := t.TempDir()
	kust := fmt.Sprintf("resources:\n  - %s\ncomponents:\n", relTo(t, dir, filepath.Join(k8sDir, "base")))
	for _, c := range components {
		kust += fmt.Sprintf("  - %s\n", relTo(t, dir, filepath.Join(k8sDir, "components", c)))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	return k8stest.Kustomize(t, dir)
}

// policy is the NetworkPolicy named name.
func policy(t *testing.T, b k8stest.Built, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, np := range b.NetworkPolicies {
		if np.Name == name {
			return np
		}
	}
	t.Fatalf("no NetworkPolicy %s in the build", name)
	return nil
}
