package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// exitUnhealthy is healthcheck's only failure status, bad flags included:
// Docker reads 1 as unhealthy and reserves 2.
const exitUnhealthy = 1

// Bounds of healthcheck --timeout: the check must end well before the
// orchestrator's own timeout (compose: 5s).
const (
	minHealthTimeout = 100 * time.Millisecond
	maxHealthTimeout = time.Minute
)

func (a *app) healthcheckCommand() *cobra.Command {
	var (
		target  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Ask a worker's /readyz whether it is ready: exit 0 if so, 1 if not",
		Long: `Ask a worker's /readyz whether it is ready, for container healthchecks in an
image without a shell or curl. Exit status 0 when /readyz answers 2xx, 1 when
it answers otherwise, does not answer within --timeout, or the flags are
wrong (Docker reserves status 2). The answer, or the reason, is printed: it
shows in 'docker inspect' as the health log.`,
		Example: `  coze-eraser healthcheck
  coze-eraser healthcheck --url http://127.0.0.1:9465/readyz --timeout 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.healthcheck(cmd.Context(), target, timeout)
		},
	}
	cmd.Flags().StringVar(&target, "url", "http://"+defaultMetricsAddr+"/readyz", "the worker's /readyz URL (its --metrics-addr)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the answer (100ms to 1m)")
	return cmd
}

func (a *app) healthcheck(ctx context.Context, target string, timeout time.Duration) error {
	if timeout < minHealthTimeout || timeout > maxHealthTimeout {
		return unhealthy("--timeout %v: must be %v to %v", timeout, minHealthTimeout, maxHealthTimeout)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return unhealthy("--url %q: use http://host:port/readyz", target)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return unhealthy("--url %q: %v", target, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if errors.Is(err, context.DeadlineExceeded) {
		return unhealthy("GET %s: no answer within %v", u.Redacted(), timeout)
	}
	if err != nil {
		return unhealthy("%v", err)
	}
	defer resp.Body.Close()
	// /readyz answers one line; more is not a reason worth keeping.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	reason := strings.TrimSpace(string(body))
	if resp.StatusCode/100 != 2 {
		return unhealthy("GET %s: %s: %s", u.Redacted(), resp.Status, reason)
	}
	fmt.Fprintln(a.stdout, reason)
	return nil
}

func unhealthy(format string, args ...any) error {
	return &exitError{code: exitUnhealthy, err: fmt.Errorf(format, args...)}
}
