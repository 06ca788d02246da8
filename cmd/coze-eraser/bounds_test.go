package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestFlagBounds is issue 11, point 7: values that meant something else
// (--max-retry 2147483647 as 0, --rate NaN as no limit, --request-timeout
// 0s as no timeout, a ledger that expires before its tasks run, a due time
// in the past, a 130 KB note) are refused with the allowed range, before
// any connection; the values at the edges pass.
func TestFlagBounds(t *testing.T) {
	t.Parallel()
	dead := deadRedisURL(t)
	env := map[string]string{"REDIS_URL": dead, "COZE_ERASER_REDIS_WAIT": "0", "COZE_API_TOKEN": "pat_bounds"}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"enqueue", "1", "--max-retry", "2147483647"}, "--max-retry 2147483647: must be 0 to 1000"},
		{[]string{"enqueue", "1", "--max-retry", "-1"}, "--max-retry -1: must be 0 to 1000"},
		{[]string{"enqueue", "1", "--note", strings.Repeat("n", 130<<10)}, "--note: 133120 bytes long; at most 1024 bytes are allowed"},
		{[]string{"enqueue", "1", "--note", "ticket \x1b[31m118"}, "--note: has the control character U+001B at byte 8"},
		{[]string{"enqueue", "1", "--note", "ticket \xff"}, "--note: not valid UTF-8"},
		{[]string{"enqueue", "1", "--ledger-ttl", "1h", "--in", "48h"}, "--ledger-ttl 1h0m0s: records would expire before the tasks run (--in 48h0m0s)"},
		{[]string{"enqueue", "1", "--ledger-ttl", "1h", "--at", time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}, "records would expire before the tasks run (--at"},
		{[]string{"enqueue", "1", "--ledger-ttl", "30m"}, "--ledger-ttl 30m0s: must be 1h0m0s to 87600h0m0s"},
		{[]string{"enqueue", "1", "--ledger-ttl", "87601h"}, "--ledger-ttl 87601h0m0s: must be 1h0m0s to 87600h0m0s"},
		{[]string{"enqueue", "1", "--ledger-ttl", "2h"}, "--ledger-ttl 2h0m0s: records would expire before the batch is due (720h0m0s after creation, the default"},
		{[]string{"enqueue", "1", "--due-in", "9601h"}, "--ledger-ttl 9600h0m0s: records would expire before the batch is due (--due-in 9601h0m0s)"},
		{[]string{"enqueue", "1", "--due", past}, "--due " + past + ": is in the past"},
		{[]string{"enqueue", "1", "--concurrency", "0"}, "--concurrency 0: must be 1 to 1000"},
		{[]string{"enqueue", "1", "--concurrency", "1001"}, "--concurrency 1001: must be 1 to 1000"},
		{[]string{"enqueue", "1", "--redis-wait", "-1s"}, "--redis-wait -1s: must be 0s to 24h0m0s"},
		{[]string{"worker", "--rate", "NaN"}, "--rate NaN: must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"worker", "--rate", "1e-300"}, "--rate 1e-300: must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"worker", "--rate", "+Inf"}, "must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"worker", "--rate", "-1"}, "must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"worker", "--rate", "100001"}, "must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"worker", "--burst", "0"}, "--burst 0: must be 1 to 10000"},
		{[]string{"worker", "--burst", "10001"}, "--burst 10001: must be 1 to 10000"},
		{[]string{"worker", "--max-inflight", "-1"}, "--max-inflight -1: must be 0 (no cap) or 1 to 100000"},
		{[]string{"worker", "--max-inflight", "100001"}, "--max-inflight 100001: must be 0 (no cap) or 1 to 100000"},
		{[]string{"worker", "--concurrency", "0"}, "--concurrency 0: must be 1 to 10000"},
		{[]string{"worker", "--concurrency", "10001"}, "--concurrency 10001: must be 1 to 10000"},
		{[]string{"worker", "--request-timeout", "0s"}, "--request-timeout 0s: must be 1s to 10m0s"},
		{[]string{"worker", "--request-timeout", "500ms"}, "--request-timeout 500ms: must be 1s to 10m0s"},
		{[]string{"worker", "--request-timeout", "11m"}, "--request-timeout 11m0s: must be 1s to 10m0s"},
		{[]string{"worker", "--shutdown-timeout", "-1s"}, "--shutdown-timeout -1s: must be more than 0s and at most 1h0m0s"},
		{[]string{"worker", "--shutdown-timeout", "0s"}, "--shutdown-timeout 0s: must be more than 0s and at most 1h0m0s"},
		{[]string{"worker", "--shutdown-timeout", "2h"}, "--shutdown-timeout 2h0m0s: must be more than 0s and at most 1h0m0s"},
		{[]string{"worker", "--retry-base", "0s"}, "--retry-base 0s: must be more than 0s and at most --retry-cap (10m0s)"},
		{[]string{"worker", "--retry-base", "1m", "--retry-cap", "1s"}, "--retry-base 1m0s: must be more than 0s and at most --retry-cap (1s)"},
		{[]string{"worker", "--retry-cap", "25h"}, "--retry-cap 25h0m0s: must be at most 24h0m0s"},
		{[]string{"worker", "--auth-probe-interval", "0s"}, "--auth-probe-interval 0s: must be more than 0s and at most 1h0m0s"},
		{[]string{"worker", "--auth-probe-interval", "2h"}, "--auth-probe-interval 2h0m0s: must be more than 0s and at most 1h0m0s"},
		{[]string{"worker", "--ledger-ttl", "30m"}, "--ledger-ttl 30m0s: must be 1h0m0s to 87600h0m0s"},
		{[]string{"worker", "--redis-wait", "25h"}, "--redis-wait 25h0m0s: must be 0s to 24h0m0s"},
		{[]string{"run", "1", "--progress-every", "0s"}, "--progress-every 0s: must be 100ms to 1h0m0s"},
		{[]string{"run", "1", "--progress-every", "2h"}, "--progress-every 2h0m0s: must be 100ms to 1h0m0s"},
		{[]string{"run", "1", "--max-retry", "5000"}, "--max-retry 5000: must be 0 to 1000"},
		{[]string{"run", "1", "--rate", "NaN"}, "--rate NaN: must be auto, 0 (no shared budget) or 0.01 to 100000"},
		{[]string{"failures", "retry", "--max-retry", "5000"}, "--max-retry 5000: must be 0 to 1000"},
		{[]string{"status", "--limit", "-1"}, "--limit -1: must be 0 (all batches) or more"},
		{[]string{"demo", "--concurrency", "0"}, "--concurrency 0: must be 1 to 10000"},
		{[]string{"fake-api", "--addr", "127.0.0.1:0", "--rate-limit", "NaN"}, "--rate-limit NaN: must be 0 (no limit) or a positive number"},
		{[]string{"fake-api", "--addr", "127.0.0.1:0", "--burst", "0"}, "--burst 0: must be 1 or more"},
		{[]string{"fake-api", "--addr", "127.0.0.1:0", "--latency", "-1s"}, "--latency -1s: must not be negative"},
		{[]string{"fake-api", "--addr", "127.0.0.1:0", "--slow-delay", "-1s"}, "--slow-delay -1s: must not be negative"},
		{[]string{"fake-api", "--addr", "127.0.0.1:0", "--retry-after", "-1"}, "--retry-after -1: must be 0 or more"},
	}
	for _, tt := range bad {
		t.Run(strings.Join(tt.args, " ")[:min(60, len(strings.Join(tt.args, " ")))], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := cli{env: env}.run(ctx, tt.args...)
			first := strings.SplitN(res.stderr, "\n", 2)[0]
			if res.code != exitSetup || !strings.Contains(first, tt.want) {
				t.Errorf("exit %d, stderr %.300q; want exit 2 and %q", res.code, res.stderr, tt.want)
			}
		})
	}
	good := [][]string{
		{"enqueue", "1", "--max-retry", "0"},
		{"enqueue", "1", "--max-retry", "1000"},
		{"enqueue", "1", "--note", strings.Repeat("é", 512)},
		{"enqueue", "1", "--ledger-ttl", "1h", "--due-in", "59m"},
		{"enqueue", "1", "--ledger-ttl", "87600h", "--in", "87599h", "--due-in", "87599h"},
		{"enqueue", "1", "--due", time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339), "--concurrency", "1000"},
		{"worker", "--rate", "0", "--concurrency", "1", "--request-timeout", "1s", "--shutdown-timeout", "1ms"},
		{"worker", "--rate", "0.01", "--burst", "10000", "--max-inflight", "100000", "--concurrency", "10000"},
		{"worker", "--rate", "100000", "--request-timeout", "10m", "--shutdown-timeout", "1h", "--ledger-ttl", "87600h"},
		{"worker", "--retry-base", "1ms", "--retry-cap", "1ms", "--auth-probe-interval", "1h"},
		{"worker", "--retry-base", "24h", "--retry-cap", "24h", "--auth-probe-interval", "1ms"},
		{"run", "1", "--progress-every", "100ms", "--max-retry", "1000"},
		{"run", "1", "--progress-every", "1h"},
		{"failures", "retry", "--max-retry", "1000"},
		{"status", "--limit", "0"},
	}
	for _, args := range good {
		t.Run("ok "+strings.Join(args, " ")[:min(60, len(strings.Join(args, " ")))], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := cli{env: env}.run(ctx, args...)
			if res.code != exitSetup || !strings.Contains(res.stderr, "cannot reach Redis") {
				t.Errorf("exit %d, stderr %.300q; want the flags taken and Redis tried", res.code, res.stderr)
			}
		})
	}
}

// TestEnqueueAtInThePastWarns: asynq runs a task scheduled in the past at
// once, which is fine, but the user is told.
func TestEnqueueAtInThePastWarns(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	res := cli{env: map[string]string{"REDIS_URL": srv.URL}}.run(context.Background(), "enqueue", "1", "--at", at)
	if res.code != 0 || !strings.Contains(res.stderr, "--at "+at+" is in the past: the deletions run now") {
		t.Errorf("exit %d, stderr %q; want exit 0 and a warning", res.code, res.stderr)
	}
}

// TestTokenFileReadableByOthersWarns: a token file of mode 0644 draws one
// warning naming the file and its mode, never the token; 0600 draws none.
// run, whose log shows only errors under its progress bar, warns too.
func TestTokenFileReadableByOthersWarns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		perm os.FileMode
	}{{[]string{"worker", "--metrics-addr", ""}, 0o644}, {[]string{"worker", "--metrics-addr", ""}, 0o600}, {[]string{"run", "1"}, 0o644}} {
		perm := tt.perm
		path := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(path, []byte("pat_file_SECRET\n"), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"COZE_API_TOKEN_FILE": path, "REDIS_URL": deadRedisURL(t), "COZE_ERASER_REDIS_WAIT": "0"}
		res := cli{env: env}.run(context.Background(), tt.args...)
		if res.code != exitSetup || !strings.Contains(res.stderr, "cannot reach Redis") {
			t.Fatalf("%04o: exit %d, stderr %q; want the token taken and Redis tried", perm, res.code, res.stderr)
		}
		warning := fmt.Sprintf("path=%s mode=0644", path)
		if got := strings.Count(res.stderr, "can be read by other users"); perm == 0o644 && (got != 1 || !strings.Contains(res.stderr, warning)) {
			t.Errorf("0644: %d warnings in %q, want one with %q", got, res.stderr, warning)
		} else if perm == 0o600 && got != 0 {
			t.Errorf("0600: warned: %q", res.stderr)
		}
		if strings.Contains(res.stderr, "SECRET") {
			t.Errorf("%04o: the token is in the output: %q", perm, res.stderr)
		}
	}
}
