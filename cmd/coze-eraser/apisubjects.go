package main

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/httpapi"
)

// apiSessions lets the HTTP API list as the end users' sessions of its
// OAuth app profiles, for requests that name a data subject instead of
// ids: serve's --profiles, or a worker's own identities.
type apiSessions struct {
	ids map[string]workIdentity // by profile name
	// flags give the list calls' budgets: the rate, burst, in-flight cap
	// and call timeout the workers' deletions of the profile use.
	flags workFlags
	// key is the session key (COZE_ERASER_SESSION_KEY_FILE), which keys
	// the hash a subject request's record keeps of its body.
	key []byte
}

// newAPISessions returns the sessions of ids, or nil when no profile is an
// OAuth app (or there is no session key): the API then refuses subject
// requests with 501.
func newAPISessions(ids []workIdentity, flags workFlags, key []byte) *apiSessions {
	s := &apiSessions{ids: make(map[string]workIdentity, len(ids)), flags: flags, key: key}
	apps := false
	for _, id := range ids {
		s.ids[id.profile.Name] = id
		apps = apps || id.app != nil
	}
	if !apps || len(key) == 0 {
		return nil
	}
	return s
}

// serveSessions builds serve's sessions from --profiles: nil without the
// flag. Like a worker, it needs COZE_ERASER_SESSION_KEY_FILE when a
// profile is an OAuth app, and checks every profile before any wait for
// Redis.
func (a *app) serveSessions(pf profileFlags) (*apiSessions, error) {
	if pf.file == "" {
		return nil, nil
	}
	wf := workFlags{profiles: pf, requestTimeout: coze.DefaultTimeout, rate: rateValue{auto: true}, burst: 1}
	ids, err := wf.identities(a, slog.New(slog.NewTextHandler(a.stderr, nil)).Warn)
	if err != nil {
		return nil, err
	}
	key, err := wf.sessionKey(a, ids)
	if err != nil {
		return nil, err
	}
	return newAPISessions(ids, wf, key), nil
}

// config gives cfg the subjects and the session key, listing with budgets
// on Redis rdb; it leaves cfg alone when s is nil.
func (s *apiSessions) config(cfg *httpapi.Config, rdb redis.UniversalClient) {
	if s == nil {
		return
	}
	cfg.SessionKey = s.key
	cfg.Subjects = httpapi.SubjectsFunc(func(profile, session string) (*discovery.Walker, func(), error) {
		id, ok := s.ids[profile]
		switch {
		case !ok:
			return nil, nil, &httpapi.ProfileError{Profile: profile, Reason: "not a profile of this server's --profiles"}
		case id.app == nil:
			return nil, nil, &httpapi.ProfileError{Profile: profile,
				Reason: "a static token, which has no sessions: give the OAuth JWT app profile the session belongs to"}
		}
		// One budget per request, closed when the request is done.
		return budgetedWalker(id.client.WithTokens(id.app.Session(session)), rdb, &s.flags, id)
	})
}
