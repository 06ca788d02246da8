package ratelimit_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ratelimit"
)

// TestNewRefusesRatesThatMeanNoLimit is issue 11, point 7: NaN and 1e-300
// were taken, and the fleet then ran with no limit at all.
func TestNewRefusesRatesThatMeanNoLimit(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	t.Cleanup(func() { rdb.Close() })
	bad := []struct {
		name string
		cfg  ratelimit.Config
		want string
	}{
		{"NaN rate", ratelimit.Config{Rate: math.NaN()}, "0.01 to 100000"},
		{"infinite rate", ratelimit.Config{Rate: math.Inf(1)}, "0.01 to 100000"},
		{"negative rate", ratelimit.Config{Rate: -1}, "0.01 to 100000"},
		{"tiny rate", ratelimit.Config{Rate: 1e-300}, "0.01 to 100000"},
		{"huge rate", ratelimit.Config{Rate: 1e9}, "0.01 to 100000"},
		{"negative burst", ratelimit.Config{Rate: 1, Burst: -1}, "burst -1"},
		{"huge burst", ratelimit.Config{Rate: 1, Burst: 10001}, "1 to 10000"},
		{"negative cap", ratelimit.Config{MaxInflight: -1}, "0 (no cap) or 1 to 100000"},
		{"huge cap", ratelimit.Config{MaxInflight: 100001}, "0 (no cap) or 1 to 100000"},
	}
	for _, tt := range bad {
		tt.cfg.Key = "k"
		l, err := ratelimit.New(rdb, tt.cfg)
		if err == nil {
			l.Close()
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want the allowed range %q", tt.name, err, tt.want)
		}
	}
	for _, cfg := range []ratelimit.Config{{Rate: 0}, {Rate: 0.01}, {Rate: 100000, Burst: 10000}} {
		cfg.Key = "k"
		l, err := ratelimit.New(rdb, cfg)
		if err != nil {
			t.Errorf("%+v: %v", cfg, err)
			continue
		}
		l.Close()
	}
}

// TestPushbackNeverRaisesASlowRate: the floor of the effective rate (at
// least 0.1/s by default) must not lift a configured rate below it.
func TestPushbackNeverRaisesASlowRate(t *testing.T) {
	t.Parallel()
	l, _ := setup(t, ratelimit.Config{Rate: 0.05})
	if err := l.Observe(context.Background(), coze.Result{Class: coze.ClassRateLimited}); err != nil {
		t.Fatal(err)
	}
	if got := l.Effective(); got > 0.05 {
		t.Errorf("effective rate %v after a pushback, above the configured 0.05", got)
	}
}
