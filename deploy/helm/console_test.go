package helm

import (
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/chatworker/worker/deploy/k8s/k8stest"
)

const consoleName = release + "-console"

// TestConsole: with the console on, its pod serves where its Service and
// NetworkPolicy point, with the auth, NATS credentials and switches asked
// for; only its own policy selects it (the worker's allows HTTPS out, and
// the console holds no API key).
func TestConsole(t *testing.T) {
	for name, tc := range map[string]struct {
		vals string
		env  map[string]string // "" for unset
	}{
		"all on": {vals: allOn, env: map[string]string{
			"WORKER_CONSOLE_AUTH_FILE": "/var/run/secrets/chatworker/console/htpasswd", "WORKER_CONSOLE_AUTH_HEADER": "",
			"NATS_CREDS":               "/var/run/secrets/chatworker/console-nats/console.creds",
			"WORKER_CONSOLE_READ_ONLY": "true", "WORKER_CONSOLE_HIDE_CONTENT": "true", "GOSQUARED_API_KEY_FILE": "",
		}},
		"one Secret": {vals: "console: {enabled: true, auth: {existingSecret: chat-worker-console}, natsCredentials: {existingSecret: chat-worker-console}}", env: map[string]string{
			"WORKER_CONSOLE_AUTH_FILE": "/var/run/secrets/chatworker/console/users",
			"NATS_CREDS":               "/var/run/secrets/chatworker/console/nats.creds",
			"WORKER_CONSOLE_READ_ONLY": "", "WORKER_CONSOLE_HIDE_CONTENT": "",
		}},
		"behind a proxy": {vals: "console: {enabled: true, auth: {header: X-Forwarded-User}}", env: map[string]string{
			"WORKER_CONSOLE_AUTH_HEADER": "X-Forwarded-User", "WORKER_CONSOLE_AUTH_FILE": "",
			"NATS_CREDS": "/var/run/secrets/chatworker/nats/nats.creds",
		}},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := build(t, values(t, tc.vals))
			d := k8stest.Find(t, b.Deployments, consoleName)
			pod := &d.Spec.Template.Spec
			c := &pod.Containers[0]
			env := k8stest.EffectiveEnv(t, b, c)
			for k, want := range tc.env {
				if env[k] != want {
					t.Errorf("console %s=%q, want %q", k, env[k], want)
				}
			}
			if len(c.Args) != 3 || c.Args[0] != "console" || c.Args[1] != "--addr" {
				t.Fatalf("console args %v: want console --addr 0.0.0.0:port", c.Args)
			}
			port := strings.TrimPrefix(c.Args[2], "0.0.0.0:")
			if len(c.Ports) != 1 || c.Ports[0].Name != "console" || c.Ports[0].ContainerPort != int32(atoi(t, port)) {
				t.Errorf("console ports %+v: want one named console on %s", c.Ports, port)
			}
			if p := c.ReadinessProbe; p == nil || p.TCPSocket == nil || p.TCPSocket.Port.StrVal != "console" {
				t.Errorf("console readiness probe %+v: want the console port over TCP", p)
			}
			podLabels := labels.Set(d.Spec.Template.Labels)
			var svc *corev1.Service
			for _, s := range b.Services {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
					if s.Name != consoleName || svc != nil {
						t.Errorf("Service %s selects the console pods: want only %s", s.Name, consoleName)
					}
					svc = s
				}
			}
			if svc == nil || svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 ||
				svc.Spec.Ports[0].TargetPort.StrVal != "console" || svc.Spec.Ports[0].Port != int32(atoi(t, port)) {
				t.Errorf("console Service %+v: want ClusterIP on %s targeting the console port", svc, port)
			}
			np := policy(t, b, consoleName)
			for _, other := range b.NetworkPolicies {
				sel := labelSelector(t, other)
				if sel.Matches(podLabels) != (other == np) {
					t.Errorf("NetworkPolicy %s selects the console pods: %v, want only %s", other.Name, sel.Matches(podLabels), consoleName)
				}
			}
			if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || np.Spec.Ingress[0].From[0].PodSelector == nil ||
				np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["chatworker-console-access"] != "true" ||
				np.Spec.Ingress[0].Ports[0].Port.String() != port {
				t.Errorf("console NetworkPolicy ingress %+v: want only from chatworker-console-access pods on %s", np.Spec.Ingress, port)
			}
			for _, rule := range np.Spec.Egress {
				for _, p := range rule.Ports {
					if p.Port.IntValue() == 443 {
						t.Errorf("console NetworkPolicy lets it out to HTTPS: it holds no API key")
					}
				}
			}
		})
	}
}

// TestConsoleOffByDefault: the default render has nothing of the console.
func TestConsoleOffByDefault(t *testing.T) {
	out, err := render(t, values(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range out {
		if strings.Contains(text, "component: console") || strings.Contains(text, consoleName) {
			t.Errorf("%s renders the console with the defaults", name)
		}
	}
}

// TestConsoleNeedsAuth: as `worker console` refuses to listen beyond
// loopback without auth, the chart refuses to render it so.
func TestConsoleNeedsAuth(t *testing.T) {
	for vals, want := range map[string]string{
		"console: {enabled: true}": "console.enabled needs console.auth.existingSecret",
		"console: {enabled: true, auth: {existingSecret: users, header: X-Forwarded-User}}": "not both",
	} {
		_, err := render(t, values(t, vals))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("values %q: error %v, want one saying %q", vals, err, want)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}

func labelSelector(t *testing.T, np *networkingv1.NetworkPolicy) labels.Selector {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
