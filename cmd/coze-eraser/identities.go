package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/worker"
)

// workIdentity is a profile a worker acts as: its client and, for an OAuth
// app, what mints its sessions' tokens.
type workIdentity struct {
	identity
	client *coze.Client
}

// sessionKeyEnv names the file holding the key of the session-name hash.
const sessionKeyEnv = "COZE_ERASER_SESSION_KEY_FILE"

// minSessionKeyBytes is the shortest session key: a keyed hash of a name
// with a short key could be reversed by trying every key.
const minSessionKeyBytes = 16

// identities builds the worker's identities: every profile of --profiles,
// or the default profile from --coze-base-url and COZE_API_TOKEN(_FILE).
// Errors name the profile and what to fix, before any wait for Redis.
func (f *workFlags) identities(a *app, warn func(string, ...any)) ([]workIdentity, error) {
	set, err := f.profiles.load()
	if err != nil {
		return nil, err
	}
	names := set.Names()
	if f.actAs != nil {
		name, err := f.actAs(names)
		if err != nil {
			return nil, err
		}
		names = []string{name}
	}
	out := make([]workIdentity, 0, len(names))
	for _, name := range names {
		p, _ := set.Get(name)
		id, err := a.newIdentity(p, warn, f.requestTimeout)
		if err != nil {
			if set.Len() == 1 && p.TokenEnv {
				return nil, err // the default profile's error names its variable
			}
			return nil, setupError("profile %s: %v", name, err)
		}
		tokens := id.static
		if id.app != nil {
			tokens = id.app.Session("")
		}
		client, err := coze.NewClient(p.BaseURL, tokens, coze.WithTimeout(f.requestTimeout), coze.WithUserAgent("coze-eraser/"+version()))
		if err != nil {
			return nil, setupError("profile %s: %v", name, err)
		}
		out = append(out, workIdentity{identity: id, client: client})
	}
	return out, nil
}

// needsSessionKey reports whether an identity can act as sessions.
func (f *workFlags) needsSessionKey(ids []workIdentity) bool {
	if f.actAs != nil && !f.runSessions {
		return false // run acts as one profile, without sessions
	}
	for _, id := range ids {
		if id.app != nil {
			return true
		}
	}
	return false
}

// sessionKey reads the key of the session-name hash from the file
// COZE_ERASER_SESSION_KEY_FILE names. Workers with an OAuth app profile
// need it: the ledger keeps a hash of a session name keyed with it once
// the session's batch is complete. Every worker of a fleet must have the
// same key for the hashes to match.
func (f *workFlags) sessionKey(a *app, ids []workIdentity) ([]byte, error) {
	path := a.env.get(sessionKeyEnv)
	if path == "" {
		if f.needsSessionKey(ids) && f.ephemeralSessionKey {
			return []byte(rand.Text()), nil
		}
		if f.needsSessionKey(ids) {
			return nil, setupError("%s is not set: workers with an OAuth app profile need a secret key for the hash that "+
				"replaces a session name in the ledger once its batch is complete; make one with "+
				"'head -c 32 /dev/urandom | base64 > FILE', give every worker the same file", sessionKeyEnv)
		}
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, setupError("%s: %v", sessionKeyEnv, err)
	}
	key := []byte(strings.TrimSpace(string(raw)))
	if len(key) < minSessionKeyBytes {
		return nil, setupError("%s %s: the key is %d bytes; it must be at least %d (make one with 'head -c 32 /dev/urandom | base64')",
			sessionKeyEnv, path, len(key), minSessionKeyBytes)
	}
	return key, nil
}

// workerIdentities turns the identities into the worker's, each with its
// fleet budget. Close the limiters when done.
func (f *workFlags) workerIdentities(rdb redis.UniversalClient, ids []workIdentity) (map[string]worker.Identity, []*ratelimit.Limiter, error) {
	out := make(map[string]worker.Identity, len(ids))
	var limiters []*ratelimit.Limiter
	for _, id := range ids {
		limiter, err := f.limiterFor(rdb, id)
		if err != nil {
			closeLimiters(limiters)
			return nil, nil, err
		}
		if limiter != nil {
			limiters = append(limiters, limiter)
		}
		wi := worker.Identity{API: id.client, Limiter: limiter}
		if app, client := id.app, id.client; app != nil && (f.actAs == nil || f.runSessions) {
			wi.Sessions = func(session string) worker.API { return client.WithTokens(app.Session(session)) }
		}
		out[id.profile.Name] = wi
	}
	return out, limiters, nil
}

func closeLimiters(ls []*ratelimit.Limiter) {
	for _, l := range ls {
		l.Close()
	}
}

// limiterFor returns the fleet budget of id, or nil for none. A profile's
// own rate, burst and in-flight cap win over the flags', which are the
// defaults. The budget is keyed by the API and the account: a static
// token's hash, or an OAuth app's id (its tokens change at each renewal
// and differ per session, and all draw on the app's one limit).
func (f *workFlags) limiterFor(rdb redis.UniversalClient, id workIdentity) (*ratelimit.Limiter, error) {
	p := id.profile
	rate := f.rate
	if p.Rate > 0 {
		rate = rateValue{v: p.Rate}
	}
	burst, inflight := f.burst, f.maxInflight
	if p.Burst > 0 {
		burst = p.Burst
	}
	if p.MaxInflight > 0 {
		inflight = p.MaxInflight
	}
	if rate.off() && inflight == 0 {
		return nil, nil
	}
	var key string
	if id.app != nil {
		key = ratelimit.AppBudgetKey(ledger.DefaultPrefix, p.BaseURL, p.JWT.AppID)
	} else {
		token, err := id.static.Token()
		if err != nil {
			return nil, setupError("profile %s: token: %v", p.Name, err)
		}
		key = ratelimit.BudgetKey(ledger.DefaultPrefix, id.client.BaseURL(), token)
	}
	l, err := ratelimit.New(rdb, ratelimit.Config{
		Rate:        rate.v,
		Adaptive:    !rate.off(),
		Burst:       burst,
		MaxInflight: inflight,
		Lease:       2*f.requestTimeout + 10*time.Second,
		Key:         key,
	})
	if err != nil {
		return nil, setupError("profile %s: %v", p.Name, err)
	}
	return l, nil
}

// describeIdentities is the start log line's account of the profiles:
// "app-cn(jwt) support-bot(token_file)".
func describeIdentities(ids []workIdentity) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s(%s)", id.profile.Name, profileKind(id.profile)))
	}
	return strings.Join(parts, " ")
}

// warnFunc returns log's Warn, or, when log's level hides warnings (as
// run's does, below its progress bar), a logger to standard error in the
// log's format.
func (f *workFlags) warnFunc(a *app, log *slog.Logger) func(string, ...any) {
	if log.Enabled(context.Background(), slog.LevelWarn) {
		return log.Warn
	}
	var h slog.Handler = slog.NewTextHandler(a.stderr, nil)
	if f.log.format == "json" {
		h = slog.NewJSONHandler(a.stderr, nil)
	}
	return slog.New(h).Warn
}
