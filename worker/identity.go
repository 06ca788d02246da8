package worker

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coze-eraser/coze-eraser/tasks"
)

// unknownIdentityRetry is how long a task whose identity this worker does
// not have waits before a worker looks at it again: long enough not to
// spin, short enough that a fleet rolled out with the profile takes it
// within a minute.
const unknownIdentityRetry = time.Minute

// defaultProfile is the identity of a task that names none: the worker's
// token (COZE_API_TOKEN or its file), which has no sessions.
const defaultProfile = "default"

// identityGate tells whether the worker can act as a task's identity. A
// task that names a profile the worker was not given, or a session its
// profile cannot mint for, is held back as an auth pause, never archived
// and never called as another identity: a call with the wrong identity
// would find the conversation "not found" (only its creator may delete
// it) and the ledger would record a deletion that did not happen.
type identityGate struct {
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	// warned is when each unknown profile was last logged, to log once a
	// minute rather than once a task.
	warned map[string]time.Time
}

func newIdentityGate(log *slog.Logger, now func() time.Time) *identityGate {
	return &identityGate{log: log, now: now, warned: map[string]time.Time{}}
}

// check returns why the worker cannot act as p's identity, or nil.
func (g *identityGate) check(p tasks.Payload) error {
	profile := p.Profile
	if profile == "" {
		profile = defaultProfile
	}
	var err error
	switch {
	case profile != defaultProfile:
		err = fmt.Errorf("profile %s is not configured on this worker (it has: %s): its tasks wait until a worker with it runs",
			profile, defaultProfile)
	case p.Session != "":
		err = fmt.Errorf("profile %s is a static token and cannot act as an end user's session: its session tasks wait "+
			"until a worker whose %s profile is an OAuth JWT app runs", profile, profile)
	default:
		return nil
	}
	g.warn(profile, err)
	return err
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
