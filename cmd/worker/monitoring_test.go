package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// monitoringDir holds the PodMonitor, the PrometheusRule and the dashboard.
const monitoringDir = "../../deploy/k8s/components/monitoring"

// exported is what /metrics can serve: each series name with the labels it
// may carry.
type exported map[string][]string

// targetLabels are added by Prometheus and the Prometheus Operator when
// scraping, so a query may select on them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "container", "endpoint", "service"}

// recorder is a prometheus.Registerer that remembers every collector, so the
// test lists what registerMetrics registers, histogram vectors with no
// observation yet included (a registry's Gather would leave them out).
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)
)

// workerMetrics lists the worker's metrics from the same registerMetrics
// newApp calls: names from each collector's descriptors, and series
// suffixes from its kind (what Collect shows, or the vector's type when it
// has no series yet).
func workerMetrics(t *testing.T) exported {
	t.Helper()
	rec := &recorder{}
	registerMetrics(rec, func() bool { return true })
	out := exported{}
	for _, c := range rec.cs {
		kinds := map[string]dto.MetricType{}
		// A vector with no series yet gathers nothing: its type says the
		// kind. Everything else gathers at least one family.
		switch c.(type) {
		case *prometheus.HistogramVec:
			kinds[""] = dto.MetricType_HISTOGRAM
		case *prometheus.SummaryVec:
			kinds[""] = dto.MetricType_SUMMARY
		}
		reg := prometheus.NewPedanticRegistry()
		if err := reg.Register(c); err == nil {
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				kinds[mf.GetName()] = mf.GetType()
			}
		}
		descs := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			s := d.String()
			m := descName.FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("cannot read the name in %s", s)
			}
			var ls []string
			if l := descLabels.FindStringSubmatch(s); l != nil {
				for _, kv := range strings.Split(l[1], ",") {
					if name, _, ok := strings.Cut(kv, "="); ok {
						ls = append(ls, name)
					}
				}
				for _, v := range strings.Split(l[2], ",") {
					if v != "" {
						ls = append(ls, strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")"))
					}
				}
			}
			name := m[1]
			kind, ok := kinds[name]
			if !ok {
				kind = kinds[""]
			}
			switch kind {
			case dto.MetricType_HISTOGRAM:
				out[name+"_bucket"] = append(slices.Clone(ls), "le")
				out[name+"_sum"], out[name+"_count"] = ls, ls
			case dto.MetricType_SUMMARY:
				out[name] = append(slices.Clone(ls), "quantile")
				out[name+"_sum"], out[name+"_count"] = ls, ls
			default:
				out[name] = ls
			}
		}
	}
	return out
}

// TestWorkerMetricsListed guards the listing itself: a metric each way of
// registering must be found, or the checks below would pass on nothing.
func TestWorkerMetricsListed(t *testing.T) {
	m := workerMetrics(t)
	for name, label := range map[string]string{
		"chatworker_build_info":                            "version",
		"chatworker_ready":                                 "",
		"chatworker_commands_dead_lettered_total":          "class",
		"chatworker_command_latency_seconds_bucket":        "outcome",
		"chatworker_project_paused":                        "project",
		"chatworker_project_rate_limit_wait_seconds_count": "project",
		"chatworker_api_call_duration_seconds_bucket":      "le",
		"chatworker_oldest_command_age_seconds":            "",
		"chatworker_dead_letters_stored":                   "",
		"process_resident_memory_bytes":                    "",
		"go_gc_duration_seconds":                           "quantile",
	} {
		ls, ok := m[name]
		if !ok {
			t.Errorf("%s not listed", name)
		} else if label != "" && !slices.Contains(ls, label) {
			t.Errorf("%s: labels %v lack %s", name, ls, label)
		}
	}
	if _, ok := m["chatworker_command_latency_seconds"]; ok {
		t.Error("a histogram's bare name is listed as a series")
	}
}

// checkExpr parses a PromQL expression with Prometheus's parser and checks
// that every series it selects is one the worker exports, with labels it
// carries.
func checkExpr(t *testing.T, where, expr string, m exported) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return
	}
	selectors := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		name := vs.Name
		for _, mt := range vs.LabelMatchers {
			if mt.Name == model.MetricNameLabel && mt.Type == labels.MatchEqual {
				name = mt.Value
			}
		}
		ls, ok := m[name]
		if !ok {
			t.Errorf("%s: %q selects %q, which the worker does not export", where, expr, name)
			return nil
		}
		for _, mt := range vs.LabelMatchers {
			if mt.Name != model.MetricNameLabel && !slices.Contains(ls, mt.Name) && !slices.Contains(targetLabels, mt.Name) {
				t.Errorf("%s: %q selects on label %q, which %s does not carry (%v)", where, expr, mt.Name, name, ls)
			}
		}
		return nil
	})
	if selectors == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
}

// TestAlertRules: the PrometheusRule's groups are a valid rules file by
// Prometheus's own loader (unknown fields refused), every alert has a
// runbook paragraph in docs/operations.md, and every expression names
// metrics the worker exports.
func TestAlertRules(t *testing.T) {
	m := workerMetrics(t)
	data, err := os.ReadFile(filepath.Join(monitoringDir, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Fatalf("%s %s: want monitoring.coreos.com/v1 PrometheusRule", rule.APIVersion, rule.Kind)
	}
	rulesFile, err := yaml.JSONToYAML(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rules file: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	runbooks, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			checkExpr(t, "rule "+r.Alert+r.Record, r.Expr, m)
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if !strings.Contains(string(runbooks), "### "+r.Alert+"\n") {
				t.Errorf("alert %s: no runbook heading \"### %s\" in docs/operations.md", r.Alert, r.Alert)
			}
			if want := "docs/operations.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("alert %s: runbook_url %q, want it to end in %s", r.Alert, r.Annotations["runbook_url"], want)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: want a severity label and a summary", r.Alert)
			}
		}
	}
	for _, want := range []string{"ChatWorkerDeadLettersGrowing", "ChatWorkerOldestCommandTooOld", "ChatWorkerProjectPaused", "ChatWorkerNoneReady", "ChatWorkerRateLimitWaitsHigh"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (have %v)", want, alerts)
		}
	}
}

// grafanaVars are the dashboard's variables as they look to PromQL once
// Grafana has substituted them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var labelValues = regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)

// TestDashboard: the Grafana dashboard is JSON with unique panel ids, and
// every query (panels and variables) names metrics and labels the worker
// exports.
func TestDashboard(t *testing.T) {
	m := workerMetrics(t)
	data, err := os.ReadFile(filepath.Join(monitoringDir, "chatworker-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard: uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	ids := map[int]bool{}
	exprs := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkExpr(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr), m)
			exprs++
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		mm := labelValues.FindStringSubmatch(s)
		if mm == nil {
			t.Errorf("variable %s: query %q, want label_values(metric, label)", v.Name, s)
			continue
		}
		if ls, ok := m[mm[1]]; !ok || !slices.Contains(ls, mm[2]) {
			t.Errorf("variable %s: %s has no label %s", v.Name, mm[1], mm[2])
		}
	}
	t.Logf("%d panels, %d queries checked", len(dash.Panels), exprs)
}
