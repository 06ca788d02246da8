package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/redistest"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/sweep"
	"github.com/coze-eraser/coze-eraser/worker"
)

const dashboardFile = "grafana/dashboards/coze-eraser.json"

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// the expr of each panel's targets, rows' nested panels included.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return exprs
}

// grafanaVars are the built-in variables the dashboard uses, with values
// that make an expression plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
)

// metricNames returns the metric names an expression selects: the
// identifiers left once strings, label matchers, ranges and groupings are
// gone that are neither a function (followed by "(") nor a keyword.
func metricNames(expr string) []string {
	e := promString.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") ||
			slices.Contains(promKeywords, strings.ToLower(name)) {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // the exponent or unit of a number: 1e3
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (outcome) (rate(coze_eraser_deletions_total{outcome="failed"}[5m]))`: {"coze_eraser_deletions_total"},
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e3`:           {"a_bucket"},
		`time() - max by (sweep) (b) > 2 * max without (x) (c{l=~"or|and"})`:         {"b", "c"},
		`x / on (instance) group_left (profile) y or z unless w`:                     {"x", "y", "z", "w"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q; want %q", expr, got, want)
		}
	}
}

// exportedMetrics starts a worker as `worker --rate N --sweeps FILE` runs
// it: a fleet budget, the sweeps' collectors on its registry, against a
// fake API and a Redis of its own. It deletes a few ids and keeps one
// batch open on a queue it does not serve, so that every series exists.
// It returns the metric families its /metrics serves, by name, with their
// types.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	api, err := coze.NewClient(fake.URL, coze.StaticToken("pat_dashboard_test"), coze.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	limiter, err := ratelimit.New(rdb, ratelimit.Config{Rate: 1000, Burst: 10, Key: "dashboard-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(limiter.Close)
	reg := prometheus.NewRegistry()
	// What cmd/coze-eraser registers beside the worker's own collectors
	// when the worker runs scheduled sweeps.
	sweeps := sweep.NewMetrics(reg)
	sweeps.Runs.WithLabelValues("nightly", sweep.ResultSuccess)
	sweeps.LastSuccess.WithLabelValues("nightly").SetToCurrentTime()
	sweeps.Interval.WithLabelValues("nightly").Set(86400)
	w, err := worker.New(worker.Config{Redis: rdb, API: api, Limiter: limiter, Registry: reg,
		Logger: slog.New(slog.DiscardHandler), PollInterval: 20 * time.Millisecond, RedisGaugesInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	srv := httptest.NewServer(w.HTTPHandler())
	t.Cleanup(srv.Close)

	enq := enqueue.NewClient(rdb)
	t.Cleanup(func() { enq.Close() })
	ids := []string{"7400000000000000001", "7400000000000000002", "7400000000000000003"}
	if _, err := enq.EnqueueAll(ctx, slices.Values(ids), enqueue.Batch("served")); err != nil {
		t.Fatal(err)
	}
	if _, err := enq.EnqueueAll(ctx, slices.Values([]string{"7400000000000000009"}),
		enqueue.Batch("waiting"), enqueue.Queue("unserved")); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		text := scrape(t, srv.URL+"/metrics")
		if strings.Contains(text, `coze_eraser_deletions_total{outcome="deleted"} 3`) &&
			strings.Contains(text, "coze_eraser_oldest_open_batch_due_seconds ") &&
			strings.Contains(text, `coze_eraser_unfed_ids{queue="unserved"} 1`) {
			return metricTypes(text)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's /metrics lacks the deletions or the open batch after 30 s:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// metricTypes reads the "# TYPE name type" lines of a text exposition.
func metricTypes(text string) map[string]string {
	types := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}

// exported says whether name is a series of one of the families: the
// family itself, or a histogram's or summary's _bucket, _sum or _count.
func exported(types map[string]string, name string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if typ := types[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
			return true
		}
	}
	return false
}

// TestDashboardQueries: every query of the Grafana dashboard parses
// (promtool checks it as a recording rule) and names only metrics a real
// worker exports.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t, dashboardFile)
	if len(exprs) < 10 {
		t.Fatalf("%s has %d queries; want the dashboard's panels", dashboardFile, len(exprs))
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(e)})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", file)

	types := exportedMetrics(t)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(grafanaVars.Replace(e))
		if len(names) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, name := range names {
			used[name] = true
			if !exported(types, name) {
				t.Errorf("query %q uses %s, which the worker does not export", e, name)
			}
		}
	}
	// The panels the issue asks for, by the metric each one needs.
	for _, name := range []string{"coze_eraser_deletions_total", "coze_eraser_api_requests_total",
		"coze_eraser_api_request_duration_seconds_bucket", "coze_eraser_rate_limit_effective_requests_per_second",
		"coze_eraser_rate_limit_configured_requests_per_second", "coze_eraser_queue_tasks", "coze_eraser_unfed_ids", "coze_eraser_batches",
		"coze_eraser_oldest_open_batch_due_seconds", "coze_eraser_auth_paused", "coze_eraser_sweep_runs_total",
		"coze_eraser_verifications_total"} {
		if !used[name] {
			t.Errorf("the dashboard has no panel on %s", name)
		}
	}
}

// TestGrafanaProvisioning: compose runs Grafana on loopback with the
// repository's provisioning read-only, its datasource is the compose
// Prometheus, and the provider loads the dashboards' directory.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	var c compose
	load(t, "../docker-compose.yml", &c)
	g, ok := c.Services["grafana"]
	if !ok || !strings.HasPrefix(g.Image, "grafana/grafana:") || len(g.Profiles) != 0 {
		t.Fatalf("grafana service: %+v; want the official image, always on", g)
	}
	vols := strings.Join(g.Volumes, " ")
	for _, want := range []string{"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro", "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro"} {
		if !strings.Contains(vols, want) {
			t.Errorf("grafana volumes %q lack %s", g.Volumes, want)
		}
	}
	if len(g.Ports) != 1 || g.Ports[0] != "127.0.0.1:3000:3000" {
		t.Errorf("grafana ports %q; want 127.0.0.1:3000:3000", g.Ports)
	}
	if g.Environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "Viewer" || !strings.Contains(g.Environment["GF_SECURITY_ADMIN_PASSWORD"], "GRAFANA_ADMIN_PASSWORD") {
		t.Errorf("grafana environment %v; want an anonymous viewer and the admin password from .env", g.Environment)
	}

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	load(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("datasources %+v; want the compose Prometheus", ds.Datasources)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	load(t, "grafana/provisioning/dashboards/coze-eraser.yml", &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != "/etc/grafana/dashboards" {
		t.Errorf("dashboard providers %+v; want /etc/grafana/dashboards", prov.Providers)
	}

	// Every panel and target uses the provisioned datasource, by its uid.
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != ds.Datasources[0].UID {
			t.Errorf("panel %q: datasource %q; want %q", p.Title, p.Datasource.UID, ds.Datasources[0].UID)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != ds.Datasources[0].UID {
				t.Errorf("panel %q: a target's datasource %q; want %q", p.Title, tg.Datasource.UID, ds.Datasources[0].UID)
			}
		}
	}
}
