package helm

import (
	"maps"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/diff"

	"github.com/chatworker/worker/deploy/k8s/k8stest"
)

// The chart's default render against the Kustomize base, object by object,
// on every field that matters to how the worker runs: pod specs (security
// contexts, probes, resources, grace period, ports, args, volumes, the
// effective environment), Deployment strategy, Job and CronJob settings,
// Service, PDB, NetworkPolicy rules and KEDA trigger. What legitimately
// differs is normalised away, each with its reason:
//   - labels and selectors: Helm's carry app.kubernetes.io/instance; that
//     each selects the right pods is CheckBuild's job;
//   - image and pull policy: the chart pins its appVersion;
//   - envFrom: the ConfigMap's name carries a hash under Kustomize, and the
//     provision hook Job takes the settings inline (it runs before the
//     ConfigMap exists); the effective environments are compared instead;
//   - the provision Job's service account: the hook runs before the
//     release's ServiceAccount exists, so it uses the namespace's default
//     (no token mounted either way).

// TestParityWithKustomize compares the chart's defaults with deploy/k8s/base.
func TestParityWithKustomize(t *testing.T) {
	k := kustomizeBase(t)
	h, _ := build(t, values(t, ""))

	if got, want := kindsOf(h), kindsOf(k); !slices.Equal(got, want) {
		t.Errorf("kinds: chart %v, Kustomize %v", got, want)
	}

	// Deployment.
	kd, hd := k8stest.Find(t, k.Deployments, release), k8stest.Find(t, h.Deployments, release)
	same(t, "Deployment pod spec", podSpec(t, k, &kd.Spec.Template.Spec, false), podSpec(t, h, &hd.Spec.Template.Spec, false))
	kds, hds := kd.Spec.DeepCopy(), hd.Spec.DeepCopy()
	kds.Selector, hds.Selector = nil, nil
	kds.Template, hds.Template = corev1.PodTemplateSpec{}, corev1.PodTemplateSpec{}
	same(t, "Deployment spec", kds, hds)

	// Provision Job.
	if len(k.Jobs) != 1 || len(h.Jobs) != 1 {
		t.Fatalf("Jobs: chart %d, Kustomize %d, want one each", len(h.Jobs), len(k.Jobs))
	}
	same(t, "provision Job pod spec", podSpec(t, k, &k.Jobs[0].Spec.Template.Spec, true), podSpec(t, h, &h.Jobs[0].Spec.Template.Spec, true))
	kjs, hjs := k.Jobs[0].Spec.DeepCopy(), h.Jobs[0].Spec.DeepCopy()
	kjs.Template, hjs.Template = corev1.PodTemplateSpec{}, corev1.PodTemplateSpec{}
	same(t, "provision Job spec", kjs, hjs)

	// Export CronJob.
	if len(k.CronJobs) != 1 || len(h.CronJobs) != 1 {
		t.Fatalf("CronJobs: chart %d, Kustomize %d, want one each", len(h.CronJobs), len(k.CronJobs))
	}
	kc, hc := k.CronJobs[0].Spec.DeepCopy(), h.CronJobs[0].Spec.DeepCopy()
	same(t, "export CronJob pod spec", podSpec(t, k, &kc.JobTemplate.Spec.Template.Spec, false), podSpec(t, h, &hc.JobTemplate.Spec.Template.Spec, false))
	for _, c := range []*batchv1.CronJobSpec{kc, hc} {
		c.JobTemplate.Spec.Template = corev1.PodTemplateSpec{}
		c.JobTemplate.ObjectMeta = metav1.ObjectMeta{}
	}
	same(t, "export CronJob spec", kc, hc)

	// Service, PDB, NetworkPolicy, ServiceAccount, ScaledObject.
	if len(k.Services) != 1 || len(h.Services) != 1 {
		t.Fatalf("Services: chart %d, Kustomize %d, want one each", len(h.Services), len(k.Services))
	}
	same(t, "Service name", k.Services[0].Name, h.Services[0].Name)
	same(t, "Service annotations", k.Services[0].Annotations, h.Services[0].Annotations)
	ks, hs := k.Services[0].Spec.DeepCopy(), h.Services[0].Spec.DeepCopy()
	ks.Selector, hs.Selector = nil, nil
	same(t, "Service spec", ks, hs)

	kp, hp := k.PDBs[0].Spec.DeepCopy(), h.PDBs[0].Spec.DeepCopy()
	kp.Selector, hp.Selector = nil, nil
	same(t, "PodDisruptionBudget spec", kp, hp)

	kn, hn := k.NetworkPolicies[0].Spec.DeepCopy(), h.NetworkPolicies[0].Spec.DeepCopy()
	kn.PodSelector.MatchLabels, hn.PodSelector.MatchLabels = nil, nil
	same(t, "NetworkPolicy spec", kn, hn)

	same(t, "ServiceAccount automount", k.ServiceAccounts[0].AutomountServiceAccountToken, h.ServiceAccounts[0].AutomountServiceAccountToken)
	same(t, "ScaledObject spec", k.ScaledObjects[0].Spec, h.ScaledObjects[0].Spec)
}

// TestParityWithKustomizeComponents compares the chart's hpa mode and
// monitoring kit with the base plus components/hpa-fallback and
// components/monitoring.
func TestParityWithKustomizeComponents(t *testing.T) {
	k := kustomizeBase(t, "hpa-fallback", "monitoring")
	h, _ := build(t, values(t, `
autoscaling: {mode: hpa}
monitoring: {podMonitor: {enabled: true}, prometheusRule: {enabled: true}, dashboard: {enabled: true}}
`))
	if got, want := kindsOf(h), kindsOf(k); !slices.Equal(got, want) {
		t.Errorf("kinds: chart %v, Kustomize %v", got, want)
	}
	if len(k.HPAs) != 1 || len(h.HPAs) != 1 || len(h.ScaledObjects) != 0 {
		t.Fatalf("HPAs: chart %d (and %d ScaledObjects), Kustomize %d", len(h.HPAs), len(h.ScaledObjects), len(k.HPAs))
	}
	same(t, "HPA spec", k.HPAs[0].Spec, h.HPAs[0].Spec)

	kpm, hpm := k.PodMonitors[0].Spec, h.PodMonitors[0].Spec
	kpm.Selector.MatchLabels, hpm.Selector.MatchLabels = nil, nil
	same(t, "PodMonitor spec", kpm, hpm)
	same(t, "PrometheusRule spec", k.Rules[0].Spec, h.Rules[0].Spec)
	kcm, hcm := k.ConfigMaps["chat-worker-dashboard"], h.ConfigMaps["chat-worker-dashboard"]
	if kcm == nil || hcm == nil {
		t.Fatalf("dashboard ConfigMap: chart %v, Kustomize %v", hcm != nil, kcm != nil)
	}
	same(t, "dashboard ConfigMap data", kcm.Data, hcm.Data)
	same(t, "dashboard label", kcm.Labels["grafana_dashboard"], hcm.Labels["grafana_dashboard"])
}

// TestParityWithKustomizeConsole compares the chart's console with the base
// plus components/console, given the component's one Secret for both the
// auth file and the NATS credentials. The component's objects carry none of
// the base's labels, so its objects are matched by name; the container's
// privileged: false is normalised (see below).
func TestParityWithKustomizeConsole(t *testing.T) {
	k := kustomizeBase(t, "console")
	h, _ := build(t, values(t, `
console: {enabled: true, auth: {existingSecret: chat-worker-console, key: users}, natsCredentials: {existingSecret: chat-worker-console, key: nats.creds}}
`))
	if got, want := kindsOf(h), kindsOf(k); !slices.Equal(got, want) {
		t.Errorf("kinds: chart %v, Kustomize %v", got, want)
	}
	const name = release + "-console"
	kd, hd := k8stest.Find(t, k.Deployments, name), k8stest.Find(t, h.Deployments, name)
	// The chart gives the console the worker's securityContext value, which
	// spells out privileged: false; the component leaves it at that default.
	if sc := kd.Spec.Template.Spec.Containers[0].SecurityContext; sc != nil && sc.Privileged == nil {
		sc.Privileged = new(bool)
	}
	same(t, "console Deployment pod spec", podSpec(t, k, &kd.Spec.Template.Spec, false), podSpec(t, h, &hd.Spec.Template.Spec, false))
	kds, hds := kd.Spec.DeepCopy(), hd.Spec.DeepCopy()
	kds.Selector, hds.Selector = nil, nil
	kds.Template, hds.Template = corev1.PodTemplateSpec{}, corev1.PodTemplateSpec{}
	same(t, "console Deployment spec", kds, hds)

	ks, hs := service(t, k, name).Spec.DeepCopy(), service(t, h, name).Spec.DeepCopy()
	ks.Selector, hs.Selector = nil, nil
	same(t, "console Service spec", ks, hs)

	kn, hn := policy(t, k, name).Spec.DeepCopy(), policy(t, h, name).Spec.DeepCopy()
	kn.PodSelector.MatchLabels, hn.PodSelector.MatchLabels = nil, nil
	same(t, "console NetworkPolicy spec", kn, hn)
}

func service(t *testing.T, b k8stest.Built, name string) *corev1.Service {
	t.Helper()
	for _, s := range b.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s in the build", name)
	return nil
}

// podSpec is a copy of the pod spec with what legitimately differs
// normalised (see above), the environment resolved into Env, sorted.
func podSpec(t *testing.T, b k8stest.Built, spec *corev1.PodSpec, hook bool) *corev1.PodSpec {
	t.Helper()
	s := spec.DeepCopy()
	if hook {
		s.ServiceAccountName = ""
	}
	for i := range s.Containers {
		c := &s.Containers[i]
		env := k8stest.EffectiveEnv(t, b, c)
		c.Image, c.ImagePullPolicy, c.EnvFrom, c.Env = "", "", nil, nil
		for _, name := range slices.Sorted(maps.Keys(env)) {
			c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: env[name]})
		}
	}
	return s
}

func same(t *testing.T, what string, kustomize, chart any) {
	t.Helper()
	if !equality.Semantic.DeepEqual(kustomize, chart) {
		t.Errorf("%s: the chart differs from the Kustomize base (- Kustomize, + chart):\n%s", what, diff.Diff(kustomize, chart))
	}
}

// kindsOf lists the build's objects by kind, sorted, with repeats.
func kindsOf(b k8stest.Built) []string {
	var out []string
	add := func(kind string, n int) {
		for range n {
			out = append(out, kind)
		}
	}
	add("ConfigMap", len(b.ConfigMaps))
	add("CronJob", len(b.CronJobs))
	add("Deployment", len(b.Deployments))
	add("HorizontalPodAutoscaler", len(b.HPAs))
	add("Job", len(b.Jobs))
	add("NetworkPolicy", len(b.NetworkPolicies))
	add("PodDisruptionBudget", len(b.PDBs))
	add("PodMonitor", len(b.PodMonitors))
	add("PrometheusRule", len(b.Rules))
	add("ScaledObject", len(b.ScaledObjects))
	add("Secret", len(b.Secrets))
	add("Service", len(b.Services))
	add("ServiceAccount", len(b.ServiceAccounts))
	return out
}
