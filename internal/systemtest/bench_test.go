package systemtest

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchReportsEveryPass runs a small `coze-eraser-bench` end to end:
// its own redis-server and fake API, both enqueues, both workers, the RSS
// pass and the big enqueue, and checks every figure the issue asks for is
// printed and finite.
func TestBenchReportsEveryPass(t *testing.T) {
	t.Parallel()
	p := startProgram(t, benchBinary, nil, "--ids", "300", "--runs", "1", "--concurrency", "10",
		"--rss-concurrency", "20", "--big", "1000", "--behind", "2000", "--behind-rate", "200", "--dir", t.TempDir())
	if code, _ := p.wait(2 * time.Minute); code != 0 {
		t.Fatalf("bench exited %d:\n%s", code, p.out.String())
	}
	out := p.out.String()
	for _, pass := range []string{"enqueue/coze-eraser", "enqueue/bare asynq", "work/coze-eraser", "work/bare asynq",
		"work/coze-eraser at concurrency 20", "enqueue/coze-eraser of 1000 ids", "enqueue/coze-eraser, tasks up front",
		"work/coze-eraser, tasks up front", "enqueue/coze-eraser of 2000 ids to work behind"} {
		row := rowOf(out, pass)
		if row == nil {
			t.Errorf("no row for %q in:\n%s", pass, out)
			continue
		}
		if rate, _ := strconv.ParseFloat(row[0], 64); rate <= 0 {
			t.Errorf("%q: rate %q, want a positive number", pass, row[0])
		}
		if rss, _ := strconv.ParseFloat(row[3], 64); rss <= 0 {
			t.Errorf("%q: peak RSS %q, want a positive number", pass, row[3])
		}
	}
	ratio := regexp.MustCompile(`(?m)^(enqueue rate|work-down rate|Redis memory per pending task), coze-eraser / bare asynq: (\d+\.\d\d) \(target`)
	matches := ratio.FindAllStringSubmatch(out, -1)
	if len(matches) != 3 {
		t.Fatalf("want 3 ratio lines with finite figures, got %d in:\n%s", len(matches), out)
	}
	for _, m := range matches {
		if x, _ := strconv.ParseFloat(m[2], 64); x <= 0 {
			t.Errorf("%s ratio %s, want positive", m[1], m[2])
		}
	}
	for _, re := range []string{`(?m)^work-down rate, coze-eraser / coze-eraser, tasks up front: \d+\.\d\d `,
		`(?m)^Redis bytes per pending id, coze-eraser of 1000 ids: \d+ `,
		`(?m)^first outcome of a batch of 10 ids enqueued behind 2000 pending ids, queue default: \d+\.\d\d s`,
		`(?m)^first outcome of a batch of 10 ids enqueued behind 2000 pending ids, queue gdpr: \d+\.\d\d s`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no line matching %s in:\n%s", re, out)
		}
	}
}

// rowOf returns the figures of the table row for pass, or nil.
func rowOf(out, pass string) []string {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), pass+" ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		// A longer pass name sharing this prefix ("... at concurrency 20")
		// has words, not figures, next.
		if len(fields) == 5 {
			if _, err := strconv.ParseFloat(fields[0], 64); err == nil {
				return fields
			}
		}
	}
	return nil
}

// TestProductBinaryShipsNoBenchmark: the binary users deploy carries no
// benchmark or bare-asynq code, and none of the test helpers (the fake API,
// cozetest, is the product's: users try a worker against it); the
// benchmark's binary has the benchmark.
func TestProductBinaryShipsNoBenchmark(t *testing.T) {
	t.Parallel()
	symbols := func(bin string) string {
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		return string(out)
	}
	product := symbols(binary)
	for _, pkg := range []string{"internal/benchrun", "internal/redistest", "internal/systemtest", "testing."} {
		if strings.Contains(product, pkg) {
			t.Errorf("coze-eraser holds %s symbols", pkg)
		}
	}
	if s := symbols(benchBinary); !strings.Contains(s, "benchrun") {
		t.Error("coze-eraser-bench has no benchrun symbol: the check above proves nothing")
	}
}
