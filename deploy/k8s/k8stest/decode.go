// Package k8stest decodes and checks Kubernetes manifests for the tests of
// deploy/k8s (the Kustomize base) and deploy/helm (the chart), so both hold
// their renders to the same typed decoding and the same checks against the
// code.
package k8stest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ScaledObject mirrors the fields of KEDA's ScaledObject (keda.sh/v1alpha1)
// that these manifests use. KEDA's own Go module would bring the operator's
// whole dependency tree into this module for one type, so the mirror is
// local: a field written in a manifest but missing here fails the strict
// decode, so adding one is a deliberate step, checked against KEDA's docs.
type ScaledObject struct {
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

// PodMonitor and PrometheusRule mirror the Prometheus Operator's types
// (monitoring.coreos.com/v1) for the fields these manifests use, for the
// same reason as ScaledObject. The rules themselves are checked with
// Prometheus's own loader in cmd/worker/monitoring_test.go.
type PodMonitor struct {
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

type PrometheusRule struct {
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

// NATSJetStreamMetadata are the keys KEDA's nats-jetstream scaler reads
// (keda.sh/docs/latest/scalers/nats-jetstream); a typo is otherwise ignored.
var NATSJetStreamMetadata = []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer",
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
	"keda.sh/v1alpha1/ScaledObject":           func() any { return &ScaledObject{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &PrometheusRule{} },
	// Kustomize's own files, so a misspelt key there fails too.
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kusttypes.Kustomization{} },
	"kustomize.config.k8s.io/v1alpha1/Component":    func() any { return &kusttypes.Kustomization{} },
}

// DecodeStrict decodes one YAML document into the type of its apiVersion and
// kind, failing on unknown or duplicate fields. Kustomize's `$patch`
// directives are not fields and are removed first, so patches are checked
// like the manifests they patch.
func DecodeStrict(doc []byte) (any, error) {
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

// Built is a set of manifests (one kustomize build, one helm render),
// decoded strictly and sorted by kind.
type Built struct {
	Deployments     []*appsv1.Deployment
	Jobs            []*batchv1.Job
	CronJobs        []*batchv1.CronJob
	ConfigMaps      map[string]*corev1.ConfigMap
	Secrets         map[string]*corev1.Secret
	PodMonitors     []*PodMonitor
	Rules           []*PrometheusRule
	Services        []*corev1.Service
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
	ScaledObjects   []*ScaledObject
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	ServiceAccounts []*corev1.ServiceAccount
}

// Kustomize runs kustomize as a library on dir (a kustomization directory)
// and decodes the result strictly.
func Kustomize(t testing.TB, dir string) Built {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := NewBuilt()
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := DecodeStrict(y)
		if err != nil {
			t.Fatalf("%s: built %s: %v", dir, r.CurId(), err)
		}
		b.Add(obj)
	}
	return b
}

// NewBuilt is an empty Built, ready for Add.
func NewBuilt() Built {
	return Built{ConfigMaps: map[string]*corev1.ConfigMap{}, Secrets: map[string]*corev1.Secret{}}
}

// Add files one object from DecodeStrict under its kind.
func (b *Built) Add(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		b.Deployments = append(b.Deployments, o)
	case *batchv1.Job:
		b.Jobs = append(b.Jobs, o)
	case *batchv1.CronJob:
		b.CronJobs = append(b.CronJobs, o)
	case *corev1.ConfigMap:
		b.ConfigMaps[o.Name] = o
	case *corev1.Secret:
		b.Secrets[o.Name] = o
	case *corev1.ServiceAccount:
		b.ServiceAccounts = append(b.ServiceAccounts, o)
	case *PodMonitor:
		b.PodMonitors = append(b.PodMonitors, o)
	case *PrometheusRule:
		b.Rules = append(b.Rules, o)
	case *corev1.Service:
		b.Services = append(b.Services, o)
	case *policyv1.PodDisruptionBudget:
		b.PDBs = append(b.PDBs, o)
	case *networkingv1.NetworkPolicy:
		b.NetworkPolicies = append(b.NetworkPolicies, o)
	case *ScaledObject:
		b.ScaledObjects = append(b.ScaledObjects, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		b.HPAs = append(b.HPAs, o)
	}
}

// SplitYAML splits a multi-document YAML stream into its documents.
func SplitYAML(data []byte) ([][]byte, error) {
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// Pods are every pod template of the build, by what runs them.
func (b Built) Pods() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range b.Deployments {
		out["Deployment "+d.Name] = &d.Spec.Template
	}
	for _, j := range b.Jobs {
		out["Job "+j.Name] = &j.Spec.Template
	}
	for _, c := range b.CronJobs {
		out["CronJob "+c.Name] = &c.Spec.JobTemplate.Spec.Template
	}
	return out
}
