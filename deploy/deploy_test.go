// Package deploy holds the files that run coze-eraser in containers
// (docker-compose.yml at the top level uses them) and the test that checks
// them: no container engine runs where the tests run, so the files are
// parsed and held to what the README promises.
package deploy

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		Profiles    []string          `yaml:"profiles"`
		User        string            `yaml:"user"`
		Healthcheck struct {
			Test        []string `yaml:"test"`
			Interval    string   `yaml:"interval"`
			Timeout     string   `yaml:"timeout"`
			StartPeriod string   `yaml:"start_period"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

func load(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	var c compose
	load(t, "../docker-compose.yml", &c)

	redis := c.Services["redis"]
	if !strings.HasPrefix(redis.Image, "redis:") || !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes --appendfsync everysec") {
		t.Errorf("redis: image %q command %q; want the official image with AOF, fsync every second", redis.Image, redis.Command)
	}
	if _, named := c.Volumes["redis-data"]; len(redis.Healthcheck.Test) == 0 || !strings.HasPrefix(redis.Volumes[0], "redis-data:") || !named {
		t.Errorf("redis: healthcheck %q volumes %q; want a healthcheck and the named volume", redis.Healthcheck.Test, redis.Volumes)
	}

	worker := c.Services["worker"]
	if worker.Build != "." || len(worker.Profiles) != 0 {
		t.Errorf("worker: build %v profiles %v; want built from the repo, always on", worker.Build, worker.Profiles)
	}
	if worker.Environment["COZE_API_TOKEN_FILE"] != "/run/secrets/coze_api_token" || worker.Environment["COZE_API_TOKEN"] != "" ||
		len(worker.Secrets) != 1 || c.Secrets[worker.Secrets[0]].File == "" {
		t.Errorf("worker: the token must come from a Docker secret file: env %v secrets %v", worker.Environment, worker.Secrets)
	}
	if worker.DependsOn["redis"].Condition != "service_healthy" {
		t.Errorf("worker: depends_on %v; want redis healthy first", worker.DependsOn)
	}
	if !strings.HasPrefix(worker.Command[0], "worker") {
		t.Errorf("worker command %q", worker.Command)
	}

	prom := c.Services["prometheus"]
	if !strings.Contains(strings.Join(prom.Volumes, " "), "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus volumes %q; want the repo's config", prom.Volumes)
	}

	for _, name := range []string{"fake-api", "demo-worker", "demo-batch"} {
		s, ok := c.Services[name]
		if !ok || len(s.Profiles) != 1 || s.Profiles[0] != "demo" {
			t.Errorf("%s: profiles %v; want only under the demo profile", name, s.Profiles)
		}
	}
	if url := c.Services["demo-worker"].Environment["COZE_BASE_URL"]; url != "http://fake-api:8080" {
		t.Errorf("demo-worker talks to %q, not the fake", url)
	}
	if c.Services["demo-batch"].Command[0] != "enqueue" {
		t.Errorf("demo-batch command %q", c.Services["demo-batch"].Command)
	}

	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q beyond loopback", name, p)
			}
		}
	}
	for _, f := range []string{"prometheus.yml", "alerts.yml", "demo-ids.txt", "coze_api_token.placeholder"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("docker-compose.yml needs deploy/%s: %v", f, err)
		}
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if strings.Count(text, "\nFROM ") < 2 {
		t.Error("the Dockerfile is not multi-stage")
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot", "./cmd/coze-eraser", "ENTRYPOINT"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var p struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	load(t, "prometheus.yml", &p)
	var targets []string
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if !strings.Contains(strings.Join(targets, " "), "worker:9464") {
		t.Errorf("targets %v; want the worker's metrics port", targets)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	load(t, "alerts.yml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v", r)
			}
		}
	}
}

// TestComposeConfig asks docker-compose itself when it is installed
// (Debian's docker-compose package); the parse tests above run anyway.
func TestComposeConfig(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Log("docker-compose is not installed; the file was checked by parsing only")
		return
	}
	for _, args := range [][]string{{"config", "-q"}, {"--profile", "demo", "config", "-q"}} {
		cmd := exec.Command(bin, append([]string{"-f", "../docker-compose.yml"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker-compose %v: %v\n%s", args, err, out)
		}
	}
}

// TestComposeWorkerHealthAndSecret: the image has no shell or curl, so the
// worker's healthcheck is the binary's own `healthcheck` against /readyz on
// the port its environment gives --metrics-addr. The token file is
// bind-mounted with its host owner and mode (Compose ignores a secret's
// uid, gid and mode outside swarm), so the worker runs as the user .env
// names, who owns the 0600 file of the README's recipe.
func TestComposeWorkerHealthAndSecret(t *testing.T) {
	t.Parallel()
	var c compose
	load(t, "../docker-compose.yml", &c)
	for name, port := range map[string]string{"worker": "9464", "demo-worker": "9465"} {
		s := c.Services[name]
		if got := s.Environment["COZE_ERASER_WORKER_METRICS_ADDR"]; got != "0.0.0.0:"+port {
			t.Errorf("%s: COZE_ERASER_WORKER_METRICS_ADDR %q; want 0.0.0.0:%s (the worker's own variable)", name, got, port)
		}
		for k := range s.Environment {
			if k == "COZE_ERASER_METRICS_ADDR" || k == "COZE_ERASER_CONCURRENCY" || k == "COZE_ERASER_QUEUES" {
				t.Errorf("%s sets %s, which no command reads any more", name, k)
			}
		}
		want := []string{"CMD", "/usr/local/bin/coze-eraser", "healthcheck", "--url", "http://127.0.0.1:" + port + "/readyz"}
		if strings.Join(s.Healthcheck.Test, " ") != strings.Join(want, " ") || s.Healthcheck.Timeout == "" || s.Healthcheck.StartPeriod == "" {
			t.Errorf("%s: healthcheck %+v; want test %q with a timeout and a start period", name, s.Healthcheck, want)
		}
	}
	if got := c.Services["worker"].User; got != "${COZE_ERASER_USER:-65532:65532}" {
		t.Errorf("worker: user %q; want the .env's COZE_ERASER_USER, else the image's nonroot 65532", got)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"COZE_ERASER_USER=%s:%s", "docker compose exec worker coze-eraser status", "docker compose exec -T worker coze-eraser report"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README's docker compose section lacks %q", want)
		}
	}
}

// TestIgnoreFiles: what a build or a benchmark leaves in the tree (test
// binaries, CPU profiles, the README's `go build -o coze-eraser`) is
// neither committed nor sent to every Docker build. .dockerignore
// patterns are anchored at the context's root, hence the **/.
func TestIgnoreFiles(t *testing.T) {
	t.Parallel()
	for file, want := range map[string][]string{
		"../.gitignore":    {"*.test", "*.prof", "*.pprof", "prof/", "/coze-eraser"},
		"../.dockerignore": {"**/*.test", "**/*.prof", "**/*.pprof", "prof", "/coze-eraser"},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for _, w := range want {
			if !slices.Contains(lines, w) {
				t.Errorf("%s lacks the line %q", file, w)
			}
		}
	}
}
