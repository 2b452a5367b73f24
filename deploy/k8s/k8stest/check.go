package k8stest

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CheckSecretsCreated: an overlay that creates its own Secrets (local) must
// create every Secret a pod mounts, or the pod never starts.
func CheckSecretsCreated(t testing.TB, b Built) {
	t.Helper()
	for what, tmpl := range b.Pods() {
		for _, v := range tmpl.Spec.Volumes {
			if v.Secret != nil && b.Secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s mounts Secret %s, which the overlay does not create", what, v.Secret.SecretName)
			}
		}
	}
}

// CheckMonitoring: the PodMonitor scrapes the worker pods' metrics port, the
// rules and the dashboard are there.
func CheckMonitoring(t testing.TB, b Built) {
	t.Helper()
	worker := Find(t, b.Deployments, "chat-worker")
	if len(b.PodMonitors) != 1 || !selects(t, &b.PodMonitors[0].Spec.Selector, labels.Set(worker.Spec.Template.Labels)) {
		t.Fatalf("want one PodMonitor selecting the worker pods")
	}
	for _, ep := range b.PodMonitors[0].Spec.PodMetricsEndpoints {
		if resolvePort(t, &worker.Spec.Template.Spec.Containers[0], intstr.FromString(ep.Port)) == "" || ep.Path != "/metrics" {
			t.Errorf("PodMonitor endpoint port %q path %q: want the worker's named port and /metrics", ep.Port, ep.Path)
		}
	}
	for _, other := range b.Pods() {
		if other != &worker.Spec.Template && selects(t, &b.PodMonitors[0].Spec.Selector, labels.Set(other.Labels)) {
			t.Errorf("the PodMonitor also selects pods without metrics (%v)", other.Labels)
		}
	}
	if len(b.Rules) != 1 || len(b.Rules[0].Spec.Groups) == 0 {
		t.Errorf("want one PrometheusRule with rules")
	}
	cm, ok := b.ConfigMaps["chat-worker-dashboard"]
	if !ok || cm.Labels["grafana_dashboard"] != "1" || !json.Valid([]byte(cm.Data["chatworker-dashboard.json"])) {
		t.Errorf("want the ConfigMap chat-worker-dashboard labelled grafana_dashboard=1 holding the dashboard JSON")
	}
}

// CheckBuild checks a build against the code: every pod (checkPod), a
// provision Job, the worker's args, probes, Service, grace period, PDB,
// NetworkPolicy and autoscaler (the HPA when hpa, else KEDA's ScaledObject).
func CheckBuild(t testing.TB, code CodeFacts, b Built, hpa bool) {
	worker := Find(t, b.Deployments, "chat-worker")
	pod := &worker.Spec.Template.Spec

	for _, d := range b.Deployments {
		checkPod(t, code, b, "Deployment "+d.Name, &d.Spec.Template.Spec)
	}
	for _, j := range b.Jobs {
		checkPod(t, code, b, "Job "+j.Name, &j.Spec.Template.Spec)
	}
	for _, c := range b.CronJobs {
		checkPod(t, code, b, "CronJob "+c.Name, &c.Spec.JobTemplate.Spec.Template.Spec)
	}
	if len(b.Jobs) == 0 || b.Jobs[0].Spec.Template.Spec.Containers[0].Args[0] != "provision" {
		t.Errorf("want a Job running `worker provision`")
	}

	// The endpoints: where the code listens, what it serves.
	c := &pod.Containers[0]
	env := EffectiveEnv(t, b, c)
	if args := c.Args; len(args) == 0 || args[0] != "run" {
		t.Errorf("worker args %v: want run", args)
	}
	port := code.HTTPPort
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
		if !code.Routes[probe.HTTPGet.Path] {
			t.Errorf("worker %s probe path %s: the code serves %v", name, probe.HTTPGet.Path, keys(code.Routes))
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
	for _, s := range b.Services {
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
	if !metricsServed || !code.Routes["/metrics"] {
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
	if len(b.PDBs) != 1 || !selects(t, b.PDBs[0].Spec.Selector, podLabels) {
		t.Errorf("want one PodDisruptionBudget selecting the worker pods")
	}
	var policy *networkingv1.NetworkPolicy
	for _, np := range b.NetworkPolicies {
		if selects(t, &np.Spec.PodSelector, podLabels) {
			if policy != nil {
				t.Errorf("NetworkPolicies %s and %s both select the worker pods", policy.Name, np.Name)
			}
			policy = np
		}
	}
	if policy == nil {
		t.Fatalf("want one NetworkPolicy selecting the worker pods")
	}
	// Every pod of ours talks to NATS: a pod no policy selects gets the
	// namespace's default (deny, where one is set) instead. The console has
	// a policy of its own.
	for what, tmpl := range b.Pods() {
		if tmpl.Labels["app.kubernetes.io/name"] != worker.Spec.Template.Labels["app.kubernetes.io/name"] {
			continue // not ours: the local overlay's simulator
		}
		selected := false
		for _, np := range b.NetworkPolicies {
			selected = selected || selects(t, &np.Spec.PodSelector, labels.Set(tmpl.Labels))
		}
		if !selected {
			t.Errorf("no NetworkPolicy selects the pods of %s (%v)", what, tmpl.Labels)
		}
	}
	ingressOK := false
	for _, rule := range policy.Spec.Ingress {
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
		if len(b.ScaledObjects) != 0 || len(b.HPAs) != 1 || b.HPAs[0].Spec.ScaleTargetRef.Name != worker.Name {
			t.Errorf("with the HPA fallback: want one HPA on %s and no ScaledObject", worker.Name)
		}
		return
	}
	if len(b.ScaledObjects) != 1 || len(b.HPAs) != 0 {
		t.Fatalf("want one ScaledObject and no HPA, got %d and %d", len(b.ScaledObjects), len(b.HPAs))
	}
	so := b.ScaledObjects[0]
	if so.Spec.ScaleTargetRef.Name != worker.Name {
		t.Errorf("ScaledObject targets %q, want %q", so.Spec.ScaleTargetRef.Name, worker.Name)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("want one nats-jetstream trigger")
	}
	md := so.Spec.Triggers[0].Metadata
	for k := range md {
		if !slices.Contains(NATSJetStreamMetadata, k) {
			t.Errorf("trigger metadata %q: not a nats-jetstream key (%v)", k, NATSJetStreamMetadata)
		}
	}
	if md["stream"] != code.Stream || md["consumer"] != code.Durable {
		t.Errorf("trigger on stream %q consumer %q: the worker consumes %q with durable %q", md["stream"], md["consumer"], code.Stream, code.Durable)
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
		t.Errorf("lagThreshold %q: want a positive integer", md["lagThreshold"])
	}
}

// checkPod checks what every pod of ours must have: known variables, files
// on Secret volumes, a locked-down security context and resources.
func checkPod(t testing.TB, code CodeFacts, b Built, what string, pod *corev1.PodSpec) {
	t.Helper()
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken: want false", what)
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		where := what + " container " + c.Name
		if len(c.Args) == 0 || !code.Commands[c.Args[0]] {
			t.Errorf("%s: args %v: want a worker subcommand %v", where, c.Args, keys(code.Commands))
		}
		for name, value := range EffectiveEnv(t, b, c) {
			if !code.Env[name] {
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

// EffectiveEnv is the container's environment: its ConfigMaps, then env.
func EffectiveEnv(t testing.TB, b Built, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom without a ConfigMap cannot be checked", c.Name)
		}
		cm, ok := b.ConfigMaps[from.ConfigMapRef.Name]
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
func resolvePort(t testing.TB, c *corev1.Container, p intstr.IntOrString) string {
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

func selects(t testing.TB, sel *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Error(err)
		return false
	}
	return !s.Empty() && s.Matches(set)
}

// Find is the Deployment named name.
func Find(t testing.TB, ds []*appsv1.Deployment, name string) *appsv1.Deployment {
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
