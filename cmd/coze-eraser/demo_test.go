package main

import (
	"context"
	"regexp"
	"strconv"
	"testing"
)

// TestDemoTalliesAddUp is the README's first command, small: no Redis, no
// token, and tallies that add up to the number of ids.
func TestDemoTalliesAddUp(t *testing.T) {
	t.Parallel()
	res := cli{}.run(context.Background(), "demo", "--ids", "400", "--metrics-addr", "127.0.0.1:0")
	if res.code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	m := regexp.MustCompile(`total=(\d+) deleted=(\d+) not_found=(\d+) failed=(\d+)`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no tallies in:\n%s", res.stdout)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	if n(1) != 400 || n(2)+n(3)+n(4) != 400 {
		t.Errorf("tallies %v do not add up to 400", m[1:])
	}
	if n(4) != 5 {
		t.Errorf("failed = %d, want the 5 scripted permanent failures", n(4))
	}
	if !regexp.MustCompile(`failed +4000 +200 +1 +\S+ +\d{17}[0-9A-F]{15}`).MatchString(res.stdout) {
		t.Errorf("no failure row with a log id in:\n%s", res.stdout)
	}
}
