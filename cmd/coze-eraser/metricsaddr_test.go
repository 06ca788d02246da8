package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/coze/cozetest"
)

// busyAddr holds a loopback port until the test ends and returns it.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestRunExplicitMetricsAddrBusy: a --metrics-addr the user chose, on the
// command line or in the environment, is where Prometheus will look; when
// it is taken, run must say so and stop rather than serve elsewhere.
func TestRunExplicitMetricsAddrBusy(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"flag": {nil, []string{"--metrics-addr", busyAddr(t)}},
		"env":  {map[string]string{"COZE_ERASER_RUN_METRICS_ADDR": busyAddr(t)}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := cozetest.NewServer()
			t.Cleanup(fake.Close)
			env := map[string]string{"COZE_API_TOKEN": "pat_x", "COZE_BASE_URL": fake.URL}
			for k, v := range tc.env {
				env[k] = v
			}
			res := cli{env: env}.run(context.Background(), append([]string{"run", "7379996104798150001"}, tc.args...)...)
			if res.code != exitSetup || !strings.Contains(res.stderr, "--metrics-addr") || !strings.Contains(res.stderr, "in use") {
				t.Errorf("exit %d, stderr %q; want exit 2 naming --metrics-addr and the address in use", res.code, res.stderr)
			}
			if len(fake.Calls()) != 0 {
				t.Errorf("%d API calls; want none before the listener is open", len(fake.Calls()))
			}
		})
	}
}

// TestRunDefaultMetricsAddrMoves: the default address may be taken by
// another run or a worker on the same host; then run serves its metrics on
// a free port and says which. Not parallel: it holds the default port.
func TestRunDefaultMetricsAddrMoves(t *testing.T) {
	ln, err := net.Listen("tcp", defaultMetricsAddr)
	if err == nil { // else something else holds it: busy all the same
		defer ln.Close()
	}
	fake := cozetest.NewServer()
	t.Cleanup(fake.Close)
	env := map[string]string{"COZE_API_TOKEN": "pat_x", "COZE_BASE_URL": fake.URL}
	res := cli{env: env}.run(context.Background(), "run", "7379996104798150001")
	if res.code != exitOK || !strings.Contains(res.stderr, "metrics: http://127.0.0.1:") || strings.Contains(res.stderr, defaultMetricsAddr) {
		t.Errorf("exit %d, stderr %q; want the run done with metrics on another port", res.code, res.stderr)
	}
}
