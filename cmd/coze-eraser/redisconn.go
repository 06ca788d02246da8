package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The schemes of a Redis behind Sentinel: the sentinels' addresses, the
// master's name and the database, such as
// redis-sentinel://:PASSWORD@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/0?master=mymaster.
// The password is the primary's (and its replicas'); rediss-sentinel
// speaks TLS to them and to the sentinels.
const (
	sentinelScheme    = "redis-sentinel"
	sentinelTLSScheme = "rediss-sentinel"
)

// maxSentinels bounds the sentinels of a URL: three or five is the rule.
const maxSentinels = 32

// isSentinelURL reports whether raw names a Redis behind Sentinel.
func isSentinelURL(raw string) bool {
	return strings.HasPrefix(raw, sentinelScheme+"://") || strings.HasPrefix(raw, sentinelTLSScheme+"://")
}

// parseSentinelURL reads a redis-sentinel:// URL into go-redis's failover
// options. Errors never quote the URL: it may hold a password.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL")
	}
	opt := &redis.FailoverOptions{}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	if opt.SentinelAddrs, err = sentinelAddrs(u.Host); err != nil {
		return nil, err
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n > 15 {
			return nil, fmt.Errorf("the database %q: give a number 0 to 15, as /0", db)
		}
		opt.DB = n
	}
	q := u.Query()
	for k := range q {
		if k != "master" {
			return nil, fmt.Errorf("unknown parameter %q: the only one is master=NAME", k)
		}
	}
	if opt.MasterName = q.Get("master"); opt.MasterName == "" {
		return nil, fmt.Errorf("no master name: add ?master=NAME, the name the sentinels monitor (sentinel monitor NAME …)")
	}
	if u.Scheme == sentinelTLSScheme {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}

// sentinelAddrs splits "host:port,host:port" into addresses, each with a
// port (26379, Sentinel's, when left out).
func sentinelAddrs(list string) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			host, port = a, "26379"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/@?#") {
			return nil, fmt.Errorf("sentinel address %q: give host:port", a)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	switch {
	case len(addrs) == 0:
		return nil, fmt.Errorf("no sentinel address: give host:port,host:port,… (three or more sentinels)")
	case len(addrs) > maxSentinels:
		return nil, fmt.Errorf("%d sentinel addresses: at most %d", len(addrs), maxSentinels)
	}
	return addrs, nil
}

// sentinelURL is the URL the sentinel flags stand for (no password: that
// comes from --redis-url, or REDIS_URL, as a redis-sentinel:// URL).
func sentinelURL(addrs, master string) string {
	return sentinelScheme + "://" + addrs + "/0?master=" + url.QueryEscape(master)
}
