package main

import (
	"context"
	"strings"
	"testing"

	"github.com/coze-eraser/coze-eraser/internal/redistest"
)

// TestSentinelURL: a redis-sentinel:// URL names the sentinels, the
// master and the database; every mistake is named, and no error quotes
// the password.
func TestSentinelURL(t *testing.T) {
	opt, err := parseSentinelURL("redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,sentinel-3:26380/2?master=mymaster")
	if err != nil {
		t.Fatal(err)
	}
	if opt.MasterName != "mymaster" || opt.Password != "s3cret" || opt.DB != 2 || opt.TLSConfig != nil ||
		strings.Join(opt.SentinelAddrs, " ") != "10.0.0.1:26379 10.0.0.2:26379 sentinel-3:26380" {
		t.Errorf("parsed %+v", opt)
	}
	if opt, err := parseSentinelURL("rediss-sentinel://h:1/0?master=m"); err != nil || opt.TLSConfig == nil {
		t.Errorf("rediss-sentinel: %+v %v", opt, err)
	}
	for raw, want := range map[string]string{
		"redis-sentinel://:s3cret@h:1/0":                                            "no master name",
		"redis-sentinel://:s3cret@h:1/0?master=m&db=3":                              `unknown parameter "db"`,
		"redis-sentinel://:s3cret@h:1/x?master=m":                                   `the database "x"`,
		"redis-sentinel://:s3cret@h:1/16?master=m":                                  `the database "16"`,
		"redis-sentinel://:s3cret@/0?master=m":                                      "no sentinel address",
		"redis-sentinel://:s3cret@h:99999/0?master=m":                               `sentinel address "h:99999"`,
		"redis-sentinel://:s3cret@h:1" + strings.Repeat(",h:1", 40) + "/0?master=m": "at most 32",
	} {
		_, err := parseSentinelURL(raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%.60s: %v, want %q", raw, err, want)
		}
	}
	f := redisFlags{url: defaultRedisURL, urlDefault: defaultRedisURL, sentinelAddrs: "h:1,h:2,h:3", sentinelMaster: "m"}
	if raw, err := f.target(); err != nil || raw != "redis-sentinel://h:1,h:2,h:3/0?master=m" {
		t.Errorf("the sentinel flags: %q %v", raw, err)
	}
	f.url = "redis://other:6379/0"
	if _, err := f.target(); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("--redis-url and the sentinel flags: %v", err)
	}
	f = redisFlags{sentinelAddrs: "h:1"}
	if _, err := f.target(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("addrs without master: %v", err)
	}
}

// TestClusterRefusedAtStart: a node of a Redis Cluster is refused when the
// command connects, with the reason and what to use instead, rather than
// failing at the first script.
func TestClusterRefusedAtStart(t *testing.T) {
	t.Parallel()
	node := redistest.Start(t, redistest.WithArgs("--cluster-enabled", "yes"))
	f := redisFlags{url: node.URL}
	rdb, err := f.connect(context.Background())
	if err == nil {
		_ = rdb.Close()
		t.Fatal("connected to a cluster node")
	}
	if !strings.Contains(err.Error(), "cluster mode") || !strings.Contains(err.Error(), "redis-sentinel://") {
		t.Errorf("error %q does not say why and what to use", err)
	}
	plain := redisFlags{url: redistest.Start(t).URL}
	rdb, err = plain.connect(context.Background())
	if err != nil {
		t.Fatalf("a plain Redis: %v", err)
	}
	_ = rdb.Close()
}
