package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHealthcheckCommand is the container healthcheck: exit 0 when
// /readyz answers 2xx, 1 otherwise (Docker reserves 2), with the reason.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: Redis is not answering", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })

	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"ready", []string{"--url", srv.URL + "/readyz"}, nil, 0, "ready"},
		{"ready from env", nil, map[string]string{"COZE_ERASER_HEALTHCHECK_URL": srv.URL + "/readyz"}, 0, "ready"},
		{"not ready", []string{"--url", srv.URL + "/down"}, nil, 1, "503 Service Unavailable: not ready: Redis is not answering"},
		{"hangs", []string{"--url", srv.URL + "/hang", "--timeout", "200ms"}, nil, 1, "no answer within 200ms"},
		{"nothing listens", []string{"--url", deadHTTPURL(t)}, nil, 1, "connection refused"},
		{"bad url", []string{"--url", "127.0.0.1:9464/readyz"}, nil, 1, "--url"},
		{"bad timeout", []string{"--url", srv.URL, "--timeout", "0s"}, nil, 1, "--timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			res := cli{env: tt.env}.run(context.Background(), append([]string{"healthcheck"}, tt.args...)...)
			if res.code != tt.code || !strings.Contains(res.stdout+res.stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", res.code, res.stdout, res.stderr, tt.code, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func deadHTTPURL(t *testing.T) string {
	return "http://" + strings.TrimSuffix(strings.TrimPrefix(deadRedisURL(t), "redis://"), "/0") + "/readyz"
}
