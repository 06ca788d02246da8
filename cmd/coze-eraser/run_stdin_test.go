package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// TestRunFromStdinPrintsItsBatch: `run --file -` names its generated batch
// before the run starts (issue 12: it printed "batch " and nothing), and
// the tallies name the same batch.
func TestRunFromStdinPrintsItsBatch(t *testing.T) {
	t.Parallel()
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	ids := []string{"7379996104798150000", "7379996104798150013", "7379996104798150026"}
	c := cli{env: map[string]string{"COZE_API_TOKEN": "x"}, stdin: strings.Join(ids, "\n") + "\n"}
	res := c.run(context.Background(), append([]string{"run", "--file", "-", "--coze-base-url", fake.URL}, fastRun...)...)
	if res.code != 0 {
		t.Fatalf("run exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	m := regexp.MustCompile(`(?m)^batch (\S*)$`).FindStringSubmatch(res.stderr)
	if m == nil || !regexp.MustCompile(`^b-\d{8}T\d{6}Z-[0-9a-f]{4}$`).MatchString(m[1]) {
		t.Fatalf("no generated batch name on standard error:\n%s", res.stderr)
	}
	if !strings.Contains(lastLine(res.stdout), " batch="+m[1]+" ") {
		t.Errorf("tallies %q do not name batch %s", lastLine(res.stdout), m[1])
	}
}
