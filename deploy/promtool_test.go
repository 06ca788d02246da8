package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool finds promtool, the Prometheus rule checker and test runner.
// A missing promtool fails the test: the alert rules and the dashboard's
// queries would go unchecked.
func promtool(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("promtool"); err == nil {
		return bin
	}
	local := filepath.Join("..", ".bin", "promtool") // where scripts/ensure-promtool puts it
	if info, err := os.Stat(local); err == nil && info.Mode()&0o111 != 0 {
		return local
	}
	t.Fatal("promtool is not installed: run scripts/ensure-promtool (make test does), which takes it from " +
		"Debian's prometheus package into .bin/, or says how to install it")
	return ""
}

// runPromtool runs promtool with args and fails the test with its output
// when it does not exit 0.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules checks deploy/alerts.yml with promtool and runs its unit
// tests, deploy/alerts_test.yml.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	runPromtool(t, "check", "rules", "alerts.yml")
	runPromtool(t, "test", "rules", "alerts_test.yml")
}

// TestAlertRulesShape: every alert waits (for:), says how bad it is, and
// tells the operator what to do; the unit tests hold each alert both
// firing and not firing.
func TestAlertRulesShape(t *testing.T) {
	t.Parallel()
	var rules ruleFile
	load(t, "alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	load(t, "alerts_test.yml", &tests)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	want := []string{"ErasureFailureRatioHigh", "CozeTokenRejected", "CozeRateLimitWaitsLong", "ErasureLedgerErrors",
		"ErasureWorkerNotReady", "ErasureBatchDueSoon", "ErasureBatchOverdue"}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			if r.For == "" {
				t.Errorf("%s has no for:", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q; want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["description"], "docs/") {
				t.Errorf("%s: annotations %v; want a summary and a description that points to the docs", r.Alert, r.Annotations)
			}
			if !firing[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: alerts_test.yml has a firing case: %v, a quiet case: %v; want both", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
		}
	}
	for _, a := range want {
		if !seen[a] {
			t.Errorf("alerts.yml lacks %s", a)
		}
	}
}

// TestPromtoolMissingMessage: where promtool is neither on PATH nor in
// .bin/ and no package manager can fetch it, the script fails and says how
// to install it.
func TestPromtoolMissingMessage(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("..", "scripts", "ensure-promtool"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "scripts") // a copy, whose ../.bin holds nothing
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ensure-promtool"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, filepath.Join(dir, "ensure-promtool"))
	cmd.Env = []string{"PATH=" + t.TempDir()} // an empty PATH: no promtool, no apt-get
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "apt-get install prometheus") {
		t.Errorf("ensure-promtool without promtool: %v\n%s; want a failure that says how to install it", err, out)
	}
	info, err := os.Stat(filepath.Join("..", "scripts", "ensure-promtool"))
	if err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("scripts/ensure-promtool is not executable: %v", err)
	}
}
