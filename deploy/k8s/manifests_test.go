package k8s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// scaledObject mirrors the fields of KEDA's ScaledObject (keda.sh/v1alpha1)
// that these manifests use. KEDA's own Go module would bring the operator's
// whole dependency tree into this module for one type, so the mirror is
// local: a field written in a manifest but missing here fails the strict
// decode, so adding one is a deliberate step, checked against KEDA's docs.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Triggers        []struct {
			Type string `json:"type"`
			Name string `json:"name,omitempty"`
			// KEDA wants every value as a string: a bare number fails here.
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// podMonitor and prometheusRule mirror the Prometheus Operator's types
// (monitoring.coreos.com/v1) for the fields these manifests use, for the
// same reason as scaledObject. The rules themselves are checked with
// Prometheus's own loader in cmd/worker/monitoring_test.go.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// natsJetStreamMetadata are the keys KEDA's nats-jetstream scaler reads
// (keda.sh/docs/latest/scalers/nats-jetstream); a typo is otherwise ignored.
var natsJetStreamMetadata = []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer",
	"lagThreshold", "activationLagThreshold", "useHttps"}

// kinds are the only kinds these manifests may use, each with its Go type.
var kinds = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                            func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                        func() any { return &batchv1.CronJob{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return &scaledObject{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &podMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &prometheusRule{} },
	// Kustomize's own files, so a misspelt key there fails too.
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kusttypes.Kustomization{} },
	"kustomize.config.k8s.io/v1alpha1/Component":    func() any { return &kusttypes.Kustomization{} },
}

// decodeStrict decodes one YAML document into the type of its apiVersion and
// kind, failing on unknown or duplicate fields. Kustomize's `$patch`
// directives are not fields and are removed first, so patches are checked
// like the manifests they patch.
func decodeStrict(doc []byte) (any, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, err
	}
	if generic == nil {
		return nil, nil // an empty document
	}
	m, ok := generic.(map[string]any)
	if !ok {
		return nil, errors.New("not a mapping")
	}
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	newObj, ok := kinds[apiVersion+"/"+kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q: not a kind these tests know; add its Go type to kinds", apiVersion, kind)
	}
	js, err = json.Marshal(dropDirectives(generic))
	if err != nil {
		return nil, err
	}
	obj := newObj()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", apiVersion, kind, err)
	}
	return obj, nil
}

func dropDirectives(v any) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "$patch")
		for k, e := range v {
			v[k] = dropDirectives(e)
		}
	case []any:
		for i, e := range v {
			v[i] = dropDirectives(e)
		}
	}
	return v
}

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
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if _, err := decodeStrict(doc); err != nil {
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

// built is the output of one kustomize build, decoded.
type built struct {
	deployments []*appsv1.Deployment
	jobs        []*batchv1.Job
	cronJobs    []*batchv1.CronJob
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	podMonitors []*podMonitor
	rules       []*prometheusRule
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
	scaled      []*scaledObject
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// build runs kustomize as a library on dir (a kustomization directory) and
// decodes the result strictly.
func build(t *testing.T, dir string) built {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := built{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(y)
		if err != nil {
			t.Fatalf("%s: built %s: %v", dir, r.CurId(), err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			b.deployments = append(b.deployments, o)
		case *batchv1.Job:
			b.jobs = append(b.jobs, o)
		case *batchv1.CronJob:
			b.cronJobs = append(b.cronJobs, o)
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Secret:
			b.secrets[o.Name] = o
		case *podMonitor:
			b.podMonitors = append(b.podMonitors, o)
		case *prometheusRule:
			b.rules = append(b.rules, o)
		case *corev1.Service:
			b.services = append(b.services, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *networkingv1.NetworkPolicy:
			b.netpols = append(b.netpols, o)
		case *scaledObject:
			b.scaled = append(b.scaled, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		}
	}
	return b
}

// TestBuild builds the base, each overlay, and production with the HPA
// fallback, and checks the result against the code.
func TestBuild(t *testing.T) {
	code := readCode(t)
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
			b := build(t, dir)
			checkBuild(t, code, b, name == "production+hpa")
			if name == "local" {
				checkSecretsCreated(t, b)
			}
			if name == "production+monitoring" {
				checkMonitoring(t, b)
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

// pods are every pod template of the build, by what runs them.
func (b built) pods() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range b.deployments {
		out["Deployment "+d.Name] = &d.Spec.Template
	}
	for _, j := range b.jobs {
		out["Job "+j.Name] = &j.Spec.Template
	}
	for _, c := range b.cronJobs {
		out["CronJob "+c.Name] = &c.Spec.JobTemplate.Spec.Template
	}
	return out
}

// checkSecretsCreated: an overlay that creates its own Secrets (local) must
// create every Secret a pod mounts, or the pod never starts.
func checkSecretsCreated(t *testing.T, b built) {
	t.Helper()
	for what, tmpl := range b.pods() {
		for _, v := range tmpl.Spec.Volumes {
			if v.Secret != nil && b.secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s mounts Secret %s, which the overlay does not create", what, v.Secret.SecretName)
			}
		}
	}
}

// checkMonitoring: the PodMonitor scrapes the worker pods' metrics port, the
// rules and the dashboard are there.
func checkMonitoring(t *testing.T, b built) {
	t.Helper()
	worker := find(t, b.deployments, "chat-worker")
	if len(b.podMonitors) != 1 || !selects(t, &b.podMonitors[0].Spec.Selector, labels.Set(worker.Spec.Template.Labels)) {
		t.Fatalf("want one PodMonitor selecting the worker pods")
	}
	for _, ep := range b.podMonitors[0].Spec.PodMetricsEndpoints {
		if resolvePort(t, &worker.Spec.Template.Spec.Containers[0], intstr.FromString(ep.Port)) == "" || ep.Path != "/metrics" {
			t.Errorf("PodMonitor endpoint port %q path %q: want the worker's named port and /metrics", ep.Port, ep.Path)
		}
	}
	for _, other := range b.pods() {
		if other != &worker.Spec.Template && selects(t, &b.podMonitors[0].Spec.Selector, labels.Set(other.Labels)) {
			t.Errorf("the PodMonitor also selects pods without metrics (%v)", other.Labels)
		}
	}
	if len(b.rules) != 1 || len(b.rules[0].Spec.Groups) == 0 {
		t.Errorf("want one PrometheusRule with rules")
	}
	cm, ok := b.configMaps["chat-worker-dashboard"]
	if !ok || cm.Labels["grafana_dashboard"] != "1" || !json.Valid([]byte(cm.Data["chatworker-dashboard.json"])) {
		t.Errorf("want the ConfigMap chat-worker-dashboard labelled grafana_dashboard=1 holding the dashboard JSON")
	}
}

func checkBuild(t *testing.T, code codeFacts, b built, hpa bool) {
	worker := find(t, b.deployments, "chat-worker")
	pod := &worker.Spec.Template.Spec

	for _, d := range b.deployments {
		checkPod(t, code, b, "Deployment "+d.Name, &d.Spec.Template.Spec)
	}
	for _, j := range b.jobs {
		checkPod(t, code, b, "Job "+j.Name, &j.Spec.Template.Spec)
	}
	for _, c := range b.cronJobs {
		checkPod(t, code, b, "CronJob "+c.Name, &c.Spec.JobTemplate.Spec.Template.Spec)
	}
	if len(b.jobs) == 0 || b.jobs[0].Spec.Template.Spec.Containers[0].Args[0] != "provision" {
		t.Errorf("want a Job running `worker provision`")
	}

	// The endpoints: where the code listens, what it serves.
	c := &pod.Containers[0]
	env := effectiveEnv(t, b, c)
	if args := c.Args; len(args) == 0 || args[0] != "run" {
		t.Errorf("worker args %v: want run", args)
	}
	port := code.httpPort
	if addr, ok := env["WORKER_HTTP_ADDR"]; ok {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("WORKER_HTTP_ADDR %q: %v", addr, err)
		}
		port = p
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("worker %s probe: want an HTTP GET probe", name)
			continue
		}
		if !code.routes[probe.HTTPGet.Path] {
			t.Errorf("worker %s probe path %s: the code serves %v", name, probe.HTTPGet.Path, keys(code.routes))
		}
		if got := resolvePort(t, c, probe.HTTPGet.Port); got != port {
			t.Errorf("worker %s probe port %s: the worker listens on %s", name, got, port)
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %s: want /readyz, which reports draining and NATS trouble", c.ReadinessProbe.HTTPGet.Path)
	}
	podLabels := labels.Set(worker.Spec.Template.Labels)
	metricsServed := false
	for _, s := range b.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if got := resolvePort(t, c, sp.TargetPort); got != port {
				t.Errorf("Service %s port %s targets %s: the worker listens on %s", s.Name, sp.Name, got, port)
			}
		}
		metricsServed = metricsServed || s.Annotations["prometheus.io/path"] == "/metrics"
	}
	if !metricsServed || !code.routes["/metrics"] {
		t.Errorf("want a Service for /metrics selecting the worker pods")
	}

	// Shutdown: Kubernetes must not kill the pod before the drain is over.
	grace, err := time.ParseDuration(env["WORKER_SHUTDOWN_GRACE"])
	if err != nil {
		t.Errorf("WORKER_SHUTDOWN_GRACE %q: set it explicitly (%v)", env["WORKER_SHUTDOWN_GRACE"], err)
	}
	if tgp := pod.TerminationGracePeriodSeconds; tgp == nil || time.Duration(*tgp)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds %v: want more than WORKER_SHUTDOWN_GRACE %v", ptrString(tgp), grace)
	}

	// Disruptions and network.
	if len(b.pdbs) != 1 || !selects(t, b.pdbs[0].Spec.Selector, podLabels) {
		t.Errorf("want one PodDisruptionBudget selecting the worker pods")
	}
	if len(b.netpols) != 1 || !selects(t, &b.netpols[0].Spec.PodSelector, podLabels) {
		t.Fatalf("want one NetworkPolicy selecting the worker pods")
	}
	// Every pod of ours talks to NATS and the API: a pod the policy does not
	// select gets the namespace's default (deny, where one is set) instead.
	for what, tmpl := range b.pods() {
		if tmpl.Labels["app.kubernetes.io/name"] != worker.Spec.Template.Labels["app.kubernetes.io/name"] {
			continue // not ours: the local overlay's simulator
		}
		if !selects(t, &b.netpols[0].Spec.PodSelector, labels.Set(tmpl.Labels)) {
			t.Errorf("the NetworkPolicy does not select the pods of %s (%v)", what, tmpl.Labels)
		}
	}
	ingressOK := false
	for _, rule := range b.netpols[0].Spec.Ingress {
		for _, p := range rule.Ports {
			ingressOK = ingressOK || (p.Port != nil && resolvePort(t, c, *p.Port) == port)
		}
	}
	if !ingressOK {
		t.Errorf("NetworkPolicy: want ingress allowed on the HTTP port %s", port)
	}

	// Scaling: KEDA on the consumer's lag, or the HPA fallback; either way
	// the Deployment leaves the replica count to the autoscaler.
	if worker.Spec.Replicas != nil {
		t.Errorf("Deployment replicas %d: leave it unset, the autoscaler owns it", *worker.Spec.Replicas)
	}
	if hpa {
		if len(b.scaled) != 0 || len(b.hpas) != 1 || b.hpas[0].Spec.ScaleTargetRef.Name != worker.Name {
			t.Errorf("with the HPA fallback: want one HPA on %s and no ScaledObject", worker.Name)
		}
		return
	}
	if len(b.scaled) != 1 || len(b.hpas) != 0 {
		t.Fatalf("want one ScaledObject and no HPA, got %d and %d", len(b.scaled), len(b.hpas))
	}
	so := b.scaled[0]
	if so.Spec.ScaleTargetRef.Name != worker.Name {
		t.Errorf("ScaledObject targets %q, want %q", so.Spec.ScaleTargetRef.Name, worker.Name)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("want one nats-jetstream trigger")
	}
	md := so.Spec.Triggers[0].Metadata
	for k := range md {
		if !slices.Contains(natsJetStreamMetadata, k) {
			t.Errorf("trigger metadata %q: not a nats-jetstream key (%v)", k, natsJetStreamMetadata)
		}
	}
	if md["stream"] != code.stream || md["consumer"] != code.durable {
		t.Errorf("trigger on stream %q consumer %q: the worker consumes %q with durable %q", md["stream"], md["consumer"], code.stream, code.durable)
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
		t.Errorf("lagThreshold %q: want a positive integer", md["lagThreshold"])
	}
}

// checkPod checks what every pod of ours must have: known variables, files
// on Secret volumes, a locked-down security context and resources.
func checkPod(t *testing.T, code codeFacts, b built, what string, pod *corev1.PodSpec) {
	t.Helper()
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken: want false", what)
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		where := what + " container " + c.Name
		if len(c.Args) == 0 || !code.commands[c.Args[0]] {
			t.Errorf("%s: args %v: want a worker subcommand %v", where, c.Args, keys(code.commands))
		}
		for name, value := range effectiveEnv(t, b, c) {
			if !code.env[name] {
				t.Errorf("%s: variable %s is not read by cmd/worker", where, name)
			}
			if strings.HasPrefix(value, "/") && !onSecretVolume(pod, c, value) {
				t.Errorf("%s: %s=%s is not on a mounted Secret volume", where, name, value)
			}
		}
		sc := c.SecurityContext
		if sc == nil || !isFalse(sc.AllowPrivilegeEscalation) || !isTrue(sc.ReadOnlyRootFilesystem) ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", where)
		}
		nonRoot := (pod.SecurityContext != nil && isTrue(pod.SecurityContext.RunAsNonRoot)) || (sc != nil && isTrue(sc.RunAsNonRoot))
		if !nonRoot {
			t.Errorf("%s: want runAsNonRoot", where)
		}
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("%s: want CPU and memory requests and a memory limit", where)
		}
	}
}

// effectiveEnv is the container's environment: its ConfigMaps, then env.
func effectiveEnv(t *testing.T, b built, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom without a ConfigMap cannot be checked", c.Name)
		}
		cm, ok := b.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Fatalf("container %s: ConfigMap %s is not in the build", c.Name, from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func onSecretVolume(pod *corev1.PodSpec, c *corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return true
			}
		}
	}
	return false
}

// resolvePort turns a port number or a container port name into a number.
func resolvePort(t *testing.T, c *corev1.Container, p intstr.IntOrString) string {
	t.Helper()
	if p.Type == intstr.Int {
		return strconv.Itoa(p.IntValue())
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
	return ""
}

func selects(t *testing.T, sel *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Error(err)
		return false
	}
	return !s.Empty() && s.Matches(set)
}

func find(t *testing.T, ds []*appsv1.Deployment, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range ds {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %s in the build", name)
	return nil
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}
