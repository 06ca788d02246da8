package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/coze/cozetest"
	"github.com/coze-eraser/coze-eraser/worker"
)

type fakeAPIFlags struct {
	addr       string
	latency    time.Duration
	rateLimit  float64
	burst      int
	faults     []string
	seed       uint64
	retryAfter int
	slowDelay  time.Duration
	// jwtKeys are APP_ID:KEY_ID=PUBLIC_KEY_PEM_FILE.
	jwtKeys       []string
	tokenLifetime time.Duration
	// conversations are BOT_ID:COUNT[:APP_ID/SESSION] to make listable.
	conversations []string
	span          time.Duration
}

func (a *app) fakeAPICommand() *cobra.Command {
	var f fakeAPIFlags
	cmd := &cobra.Command{
		Use:   "fake-api",
		Short: "Serve a local stand-in for the Coze API, for trials and load tests",
		Long: `Serve a fake of DELETE /v1/conversations/{id} that behaves as the real API is
documented to: code 0 and a log id on success, 4002 for an id it already
deleted, and, on request, latency, a server-side rate limit (429 above it) and
random faults:

  ` + faultNames() + `

When COZE_API_TOKEN is set, only that token is accepted; others get 4100.
Point a worker at it with --coze-base-url http://ADDR.`,
		Example: `  coze-eraser fake-api --addr 127.0.0.1:8080 --rate-limit 300 --fault 5000=0.02 --fault reset=0.01`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return a.runFakeAPI(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.DurationVar(&f.latency, "latency", 0, "delay of every answer")
	fl.Float64Var(&f.rateLimit, "rate-limit", 0, "answer 429 above this many requests a second (0: no limit)")
	fl.IntVar(&f.burst, "burst", 1, "burst allowed by --rate-limit")
	fl.StringArrayVar(&f.faults, "fault", nil, "inject FAULT at RATE (0-1) of calls, as FAULT=RATE; repeatable")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the random faults (0: random)")
	fl.IntVar(&f.retryAfter, "retry-after", 1, "Retry-After seconds of the 429-retry-after fault")
	fl.DurationVar(&f.slowDelay, "slow-delay", 5*time.Second, "how long the slow fault takes to answer")
	fl.StringArrayVar(&f.jwtKeys, "jwt-key", nil,
		"accept OAuth JWTs of an app signed with a key, as APP_ID:KEY_ID=PUBLIC_KEY_PEM_FILE; repeatable")
	fl.StringArrayVar(&f.conversations, "conversations", nil, "make COUNT conversations on a bot for the list endpoint, as BOT_ID:COUNT, "+
		"or BOT_ID:COUNT:APP_ID/SESSION for conversations only that session of an OAuth app (--jwt-key) may list and delete; repeatable")
	fl.DurationVar(&f.span, "conversations-span", 30*24*time.Hour, "the --conversations' creation times are spread evenly over this span up to now")
	fl.DurationVar(&f.tokenLifetime, "token-lifetime", 0, "cap on the lifetime of the access tokens it mints (0: as asked, 15m by default)")
	return cmd
}

func faultNames() string {
	names := make([]string, len(cozetest.Faults))
	for i, f := range cozetest.Faults {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

func (f *fakeAPIFlags) options(token string) ([]cozetest.Option, error) {
	switch {
	case !(f.rateLimit >= 0) || math.IsInf(f.rateLimit, 0): // NaN meant no limit
		return nil, setupError("--rate-limit %v: must be 0 (no limit) or a positive number", f.rateLimit)
	case f.burst < 1:
		return nil, setupError("--burst %d: must be 1 or more", f.burst)
	case f.latency < 0:
		return nil, setupError("--latency %v: must not be negative", f.latency)
	case f.slowDelay < 0:
		return nil, setupError("--slow-delay %v: must not be negative", f.slowDelay)
	case f.retryAfter < 0:
		return nil, setupError("--retry-after %d: must be 0 or more", f.retryAfter)
	}
	rates := map[cozetest.Fault]float64{}
	known := map[string]bool{}
	for _, fault := range cozetest.Faults {
		known[string(fault)] = true
	}
	for _, spec := range f.faults {
		name, rateText, ok := strings.Cut(spec, "=")
		rate, err := strconv.ParseFloat(rateText, 64)
		if !ok || err != nil || rate < 0 || rate > 1 {
			return nil, setupError("--fault %q: use FAULT=RATE with a rate between 0 and 1", spec)
		}
		if !known[name] {
			return nil, setupError("--fault %q: unknown fault %q; known: %s", spec, name, faultNames())
		}
		rates[cozetest.Fault(name)] += rate
	}
	var sum float64
	for _, r := range rates {
		sum += r
	}
	if sum > 1 {
		return nil, setupError("--fault rates add up to %.3f, more than 1", sum)
	}
	opts := []cozetest.Option{
		cozetest.WithFaults(rates), cozetest.WithLatency(f.latency), cozetest.WithRetryAfter(f.retryAfter),
		cozetest.WithSlowDelay(f.slowDelay), cozetest.WithoutCallLog(),
	}
	if f.rateLimit > 0 {
		opts = append(opts, cozetest.WithRateLimit(f.rateLimit, f.burst))
	}
	if f.seed != 0 {
		opts = append(opts, cozetest.WithSeed(f.seed))
	}
	if token != "" {
		opts = append(opts, cozetest.WithToken(token))
	}
	apps, err := f.jwtApps()
	if err != nil {
		return nil, err
	}
	for app, keys := range apps {
		opts = append(opts, cozetest.WithJWTApp(app, keys))
	}
	if f.tokenLifetime < 0 {
		return nil, setupError("--token-lifetime %v: must not be negative", f.tokenLifetime)
	}
	if f.tokenLifetime > 0 {
		opts = append(opts, cozetest.WithTokenLifetime(f.tokenLifetime))
	}
	return opts, nil
}

// jwtApps reads --jwt-key: the public keys of each OAuth app, by key id.
func (f *fakeAPIFlags) jwtApps() (map[string]map[string]*rsa.PublicKey, error) {
	apps := map[string]map[string]*rsa.PublicKey{}
	for _, spec := range f.jwtKeys {
		ids, path, ok := strings.Cut(spec, "=")
		app, kid, ok2 := strings.Cut(ids, ":")
		if !ok || !ok2 || app == "" || kid == "" || path == "" {
			return nil, setupError("--jwt-key %q: use APP_ID:KEY_ID=PUBLIC_KEY_PEM_FILE", spec)
		}
		pub, err := readPublicKey(path)
		if err != nil {
			return nil, setupError("--jwt-key %s:%s: %v", app, kid, err)
		}
		if apps[app] == nil {
			apps[app] = map[string]*rsa.PublicKey{}
		}
		apps[app][kid] = pub
	}
	return apps, nil
}

// readPublicKey reads an RSA public key from a PEM file (PKIX "PUBLIC KEY"
// or PKCS#1 "RSA PUBLIC KEY"), as Coze shows an app's public key.
func readPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	switch block.Type {
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if rsaKey, ok := key.(*rsa.PublicKey); ok {
			return rsaKey, nil
		}
		return nil, fmt.Errorf("%s: not an RSA public key", path)
	}
	return nil, fmt.Errorf("%s: a %q PEM block, not a public key", path, block.Type)
}

func (a *app) runFakeAPI(ctx context.Context, f *fakeAPIFlags) error {
	opts, err := f.options(strings.TrimSpace(a.env.get("COZE_API_TOKEN")))
	if err != nil {
		return err
	}
	fake := cozetest.NewFake(opts...)
	made, err := f.addConversations(fake, time.Now())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return setupError("--addr: %v", err)
	}
	fmt.Fprintf(a.stderr, "fake Coze API on http://%s (Ctrl-C to stop)\n", ln.Addr())
	if made > 0 {
		fmt.Fprintf(a.stderr, "%d conversations to list, created over the last %v\n", made, f.span)
	}
	if err := worker.ServeHTTP(ctx, ln, fake); err != nil {
		return setupError("%v", err)
	}
	fmt.Fprintf(a.stderr, "answers: %v\n", fake.Counts())
	return nil
}

// maxFakeConversations bounds --conversations: the fake holds them in memory.
const maxFakeConversations = 10_000_000

// addConversations makes the conversations of --conversations, with ids
// counting up from one base and creation times spread evenly over --span
// up to now, oldest first. It returns how many it made.
func (f *fakeAPIFlags) addConversations(fake *cozetest.Fake, now time.Time) (int, error) {
	if len(f.conversations) > 0 && f.span <= 0 {
		return 0, setupError("--conversations-span %v: must be more than 0s", f.span)
	}
	type spec struct {
		bot   string
		count int
		owner cozetest.Identity
	}
	var specs []spec
	total := 0
	for _, text := range f.conversations {
		parts := strings.SplitN(text, ":", 3)
		n, err := strconv.Atoi(parts[min(1, len(parts)-1)])
		if len(parts) < 2 || err != nil || n < 1 || coze.ValidateBotID(parts[0]) != nil {
			return 0, setupError("--conversations %q: use BOT_ID:COUNT or BOT_ID:COUNT:APP_ID/SESSION, with a numeric bot id and a count of 1 or more", text)
		}
		s := spec{bot: parts[0], count: n}
		if len(parts) == 3 {
			app, session, ok := strings.Cut(parts[2], "/")
			if !ok || app == "" || session == "" {
				return 0, setupError("--conversations %q: the owner is APP_ID/SESSION", text)
			}
			s.owner = cozetest.Identity{App: app, Session: session}
		}
		total += n
		if total > maxFakeConversations {
			return 0, setupError("--conversations: %d conversations in all; at most %d", total, maxFakeConversations)
		}
		specs = append(specs, s)
	}
	step := f.span / time.Duration(max(total, 1))
	next, made := int64(7379996104000000000), 0
	batch := make([]cozetest.Conversation, 0, 1024)
	for _, s := range specs {
		for range s.count {
			made++
			batch = append(batch, cozetest.Conversation{ID: strconv.FormatInt(next+int64(made), 10), BotID: s.bot, Owner: s.owner,
				CreatedAt: now.Add(-f.span + time.Duration(made)*step)})
			if len(batch) == cap(batch) {
				fake.AddConversations(batch...)
				batch = batch[:0]
			}
		}
	}
	fake.AddConversations(batch...)
	return made, nil
}
