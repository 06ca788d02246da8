package worker

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// unknownIdentityRetry is how long a task whose identity this worker does
// not have waits before a worker looks at it again: long enough not to
// spin, short enough that a fleet rolled out with the profile takes it
// within a minute.
const unknownIdentityRetry = time.Minute

// identityGate tells whether the worker can act as a task's identity. A
// task that names a profile the worker was not given, or a session its
// profile cannot mint for, is held back as an auth pause, never archived
// and never called as another identity: a call with the wrong identity
// would find the conversation "not found" (only its creator may delete
// it) and the ledger would record a deletion that did not happen.
type identityGate struct {
	lanes map[string]*lane
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	// warned is when each unknown profile was last logged, to log once a
	// minute rather than once a task.
	warned map[string]time.Time
}

func newIdentityGate(lanes map[string]*lane, log *slog.Logger, now func() time.Time) *identityGate {
	return &identityGate{lanes: lanes, log: log, now: now, warned: map[string]time.Time{}}
}

// resolve returns the lane of p's profile and the API acting as p's
// identity, or why the worker cannot act as it.
func (g *identityGate) resolve(p tasks.Payload) (*lane, API, error) {
	profile := p.ProfileName()
	l, ok := g.lanes[profile]
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("profile %s is not configured on this worker (it has: %s): its tasks wait until a worker with it runs",
			profile, strings.Join(profileNames(g.lanes), ", "))
	case p.Session != "" && l.sessions == nil:
		err = fmt.Errorf("profile %s is a static token and cannot act as an end user's session: its session tasks wait "+
			"until a worker whose %s profile is an OAuth JWT app runs", profile, profile)
	case p.Session != "":
		return l, l.sessions(p.Session), nil
	default:
		return l, l.api, nil
	}
	g.warn(profile, err)
	return nil, nil, err
}

// warn logs err once a minute per profile. The session is not logged: it
// is personal data.
func (g *identityGate) warn(profile string, err error) {
	now := g.now()
	g.mu.Lock()
	last, seen := g.warned[profile]
	due := !seen || now.Sub(last) >= unknownIdentityRetry
	if due {
		g.warned[profile] = now
	}
	g.mu.Unlock()
	if due {
		g.log.Warn("tasks held back: this worker cannot act as their identity", "profile", profile, "error", err)
	}
}
