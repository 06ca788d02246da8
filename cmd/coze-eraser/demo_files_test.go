package main

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readCSVFile reads a whole CSV file.
func readCSVFile(t *testing.T, path string) [][]string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The proof's summary comes first as "# " comment lines.
	r := csv.NewReader(strings.NewReader(string(text)))
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// TestDemoLeavesItsFailuresInFiles: the demo's embedded Redis is gone when
// it exits, so it writes every failure row and the proof to files, prints
// their paths, and no longer sends the user to `failures list` (issue 12).
func TestDemoLeavesItsFailuresInFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out")
	res := cli{}.run(context.Background(), "demo", "--ids", "300", "--metrics-addr", "127.0.0.1:0", "--out-dir", dir)
	if res.code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout, "failures list shows") {
		t.Errorf("the demo still points at `failures list`:\n%s", res.stdout)
	}
	m := regexp.MustCompile(`not_found=(\d+) failed=(\d+)`).FindStringSubmatch(res.stdout)
	failuresPath := regexp.MustCompile(`(?m)^failure rows \(\d+\): (\S+)$`).FindStringSubmatch(res.stdout)
	proofPath := regexp.MustCompile(`(?m)^proof of erasure: (\S+)$`).FindStringSubmatch(res.stdout)
	if m == nil || failuresPath == nil || proofPath == nil {
		t.Fatalf("no tallies, failure file or proof file in:\n%s", res.stdout)
	}
	notFound, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	if filepath.Dir(failuresPath[1]) != dir || filepath.Dir(proofPath[1]) != dir {
		t.Errorf("files %s and %s not in --out-dir %s", failuresPath[1], proofPath[1], dir)
	}
	rows := readCSVFile(t, failuresPath[1])
	if len(rows)-1 != failed+notFound || rows[0][0] != "conversation_id" {
		t.Errorf("%d failure rows, want failed+not_found = %d", len(rows)-1, failed+notFound)
	}
	if proof := readCSVFile(t, proofPath[1]); len(proof)-1 != 300 || proof[0][0] != "conversation_id" {
		t.Errorf("%d proof rows, want 300", len(proof)-1)
	}
	for _, path := range []string{failuresPath[1], proofPath[1]} {
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v: want 0600 (it lists conversation ids)", path, err, info.Mode().Perm())
		}
	}
}
