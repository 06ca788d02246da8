package worker

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/ratelimit"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// Identity is one profile a worker can act as: an account (or an OAuth
// app) with its own token, its own rate limit and its own auth state.
type Identity struct {
	// API makes the profile's calls as the profile itself.
	API API
	// Sessions returns the API acting as an end user's session (the JWT
	// session_name of an OAuth app); nil when the profile cannot act as
	// a session (a static token). It is called once per task of a
	// session, so it should be cheap (coze.Client.WithTokens over a
	// JWTApp's Session is).
	Sessions func(session string) API
	// Limiter is the profile's fleet budget (rate and in-flight cap,
	// shared in Redis by every worker acting as the profile); nil: the
	// worker only pauses the profile's calls after a 429.
	Limiter *ratelimit.Limiter
}

// lane is what the worker keeps per profile: a rate-limited answer or a
// rejected key for one account says nothing about another, so each
// profile paces, pauses and probes on its own.
type lane struct {
	profile  string
	api      API
	sessions func(string) API
	pacer    pacer
	auth     *authGate
	limiter  *ratelimit.Limiter
	// lastPushback is when the API last answered "slow down" (Unix ns).
	lastPushback atomic.Int64
	// authPausedSince is when the API began rejecting the profile's
	// token (Unix ns), for the fleet report; 0 while it accepts it.
	authPausedSince atomic.Int64

	// shared is true when the worker has other lanes: then a lane's
	// tasks may not fill the worker's slots while they wait for their
	// turn (see admit).
	shared bool
	// maxWaiting bounds the lane's tasks waiting for a turn in this
	// process when shared: three quarters of the concurrency, so that
	// another profile always finds a slot.
	maxWaiting int
	waiting    atomic.Int64
	// allWaiting counts the waiting tasks of every lane of the worker,
	// at most maxAllWaiting (its concurrency less one): one slot always
	// stays to fetch, so that a third profile is never starved by two.
	allWaiting    *atomic.Int64
	maxAllWaiting int64

	backlogMu sync.Mutex
	// backlogUntil is when the last task handed back by admit is due
	// again: handed-back tasks are spread out at the lane's rate rather
	// than all coming back at once.
	backlogUntil time.Time
}

// Bounds of a shared lane's waiting tasks (see lane.admit).
const (
	// sharedForwardInterval is how often a worker serving several
	// profiles moves due handed-back tasks back to their queue (asynq's
	// DelayedTaskCheckInterval, 5 s by default): a lane's tasks come
	// back in bursts of one interval, which its waiters must cover.
	sharedForwardInterval = 250 * time.Millisecond
	// sharedPollInterval is how long such a worker's fetcher sleeps when
	// its queues are empty (asynq's TaskCheckInterval, 1 s by default):
	// between two bursts of handed-back tasks, the queue is often empty
	// for a moment, and a fetcher asleep for a second would leave the next
	// burst waiting.
	sharedPollInterval = 50 * time.Millisecond
	// laneHorizon is how far ahead a lane's waiting tasks may reserve
	// its budget: enough waiters to keep its rate up between two moves
	// of handed-back tasks to the queue, no more.
	laneHorizon = time.Second
	// minLaneWaiting is the fewest tasks a lane may have waiting.
	minLaneWaiting = 2
	// handBackHorizon bounds the spread of handed-back tasks: past it,
	// a task comes back at a random time within the next horizon and is
	// spread again.
	handBackHorizon = time.Hour
	// minSupplyRate is the least rate a lane's handed-back tasks come
	// back at, per worker, when its budget has no ceiling.
	minSupplyRate = 100
)

// admit decides whether a task of the lane may wait for its turn here.
// A task waiting for its profile's rate budget, or for its auth probe,
// holds one of the worker's slots; when the worker serves several
// profiles, a profile with a low limit (or a rejected key) and a long
// queue would hold every slot, and the other profiles' tasks behind it
// would starve. So each lane may have only as many waiters as its rate
// needs (one, the probe, while paused for auth), and the others go back
// to the queue, due again when the lane could take them. It returns a
// release to call once the turn is had, or the delay of the hand-back.
func (l *lane) admit(now time.Time) (release func(), handBack time.Duration) {
	if !l.shared {
		return func() {}, 0
	}
	paused := l.auth.isClosed()
	limit, rate := int64(l.maxWaiting), 0.0
	switch {
	case paused:
		limit = 1
	case l.limiter != nil:
		eff := l.limiter.Effective()
		limit = min(max(int64(eff*laneHorizon.Seconds()), minLaneWaiting), int64(l.maxWaiting))
		rate = supplyRate(eff, l.limiter.Configured())
	}
	if l.waiting.Add(1) > limit {
		l.waiting.Add(-1)
		return nil, l.handBack(now, paused, rate)
	}
	if l.allWaiting.Add(1) > l.maxAllWaiting {
		l.allWaiting.Add(-1)
		l.waiting.Add(-1)
		return nil, l.handBack(now, paused, rate)
	}
	return func() { l.waiting.Add(-1); l.allWaiting.Add(-1) }, 0
}

// handBack is the delay of a task the lane does not admit.
func (l *lane) handBack(now time.Time, paused bool, rate float64) time.Duration {
	if paused {
		return l.afterProbe()
	}
	return l.handBackDelay(now, rate)
}

// afterProbe is when a task of a paused lane that goes back to the queue
// is due again: after the next probe, spread over a while, so that if the
// probe succeeds, the lane's tasks return as it resumes.
func (l *lane) afterProbe() time.Duration {
	wait := l.auth.untilProbe()
	return wait + rand.N(time.Second+wait/2)
}

// supplyRate is the rate handed-back tasks of a lane are spread at, per
// worker: its ceiling when it has one (a profile's rate, --rate N), else a
// few times its effective rate, never under [minSupplyRate]. The
// schedule is made when the tasks go back, so it must already allow the
// rate the lane may grow to; and not the effective rate alone: a budget
// cut after a 429 measures what the API accepted, and a lane supplied
// only at its rate would then be supplied less, accept less, and be cut
// again. Every worker spreads its own hand-backs, so a fleet supplies a
// lane a few times over; the extra tasks go back again.
func supplyRate(effective, ceiling float64) float64 {
	if ceiling > 0 && ceiling < ratelimit.HighestRate {
		return ceiling
	}
	return max(4*effective, minSupplyRate)
}

// handBackDelay spreads handed-back tasks at rate (twenty a second
// without a budget), one after the other: a lane's backlog then comes back
// at about the rate the lane can take, rather than all at once into a
// queue it would clog for every other profile. Some jitter interleaves
// several workers' hand-backs.
func (l *lane) handBackDelay(now time.Time, rate float64) time.Duration {
	step := 50 * time.Millisecond
	if rate > 0 {
		step = time.Duration(float64(time.Second) / max(rate, 1))
	}
	jitter := rand.N(100 * time.Millisecond)
	l.backlogMu.Lock()
	defer l.backlogMu.Unlock()
	next := later(l.backlogUntil, now).Add(step)
	if next.Sub(now) > handBackHorizon {
		return handBackHorizon + rand.N(handBackHorizon)
	}
	l.backlogUntil = next
	return next.Sub(now) + jitter
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// identities returns cfg's identities by profile: Config.Identities, with
// Config.API and Config.Limiter as the profile "default".
func (c *Config) identities() (map[string]Identity, error) {
	ids := maps.Clone(c.Identities)
	if ids == nil {
		ids = map[string]Identity{}
	}
	if c.API != nil {
		if _, dup := ids[tasks.DefaultProfile]; dup {
			return nil, errors.New("worker: Config.API is the profile \"default\", and Config.Identities names it too: give it once")
		}
		ids[tasks.DefaultProfile] = Identity{API: c.API, Limiter: c.Limiter}
	} else if c.Limiter != nil {
		return nil, errors.New("worker: Config.Limiter is the default profile's budget and needs Config.API")
	}
	if len(ids) == 0 {
		return nil, errors.New("worker: Config.API or Config.Identities is required")
	}
	for name, id := range ids {
		if err := tasks.ValidateProfile(name); err != nil {
			return nil, fmt.Errorf("worker: Config.Identities: %w", err)
		}
		if id.API == nil {
			return nil, fmt.Errorf("worker: Config.Identities[%s]: API is required", name)
		}
	}
	return ids, nil
}

// newLanes builds one lane per identity.
func (s *Server) newLanes(ids map[string]Identity) map[string]*lane {
	lanes := make(map[string]*lane, len(ids))
	allWaiting := new(atomic.Int64)
	for name, id := range ids {
		l := &lane{profile: name, api: id.API, sessions: id.Sessions, limiter: id.Limiter,
			shared: len(ids) > 1, maxWaiting: max(s.cfg.Concurrency*3/4, 1),
			allWaiting: allWaiting, maxAllWaiting: int64(max(s.cfg.Concurrency-1, 1))}
		l.pacer = localPacer{newThrottle(s.cfg.RateLimitBackoff, s.cfg.Now)}
		if id.Limiter != nil {
			l.pacer = fleetPacer{limiter: id.Limiter, waited: s.metrics.RateLimitWait.WithLabelValues(name)}
			s.metrics.registerLimiter(s.cfg.Registry, name, id.Limiter)
		}
		l.auth = newAuthGate(s.cfg.AuthProbe, s.cfg.Now, func(closed bool, res coze.Result) {
			s.authChanged(name, closed, res)
		})
		s.metrics.initProfile(name)
		lanes[name] = l
	}
	return lanes
}

// profileNames lists the lanes' profiles in order.
func profileNames(lanes map[string]*lane) []string {
	return slices.Sorted(maps.Keys(lanes))
}

// pausedProfiles lists the profiles whose calls are paused for auth.
func pausedProfiles(lanes map[string]*lane) []string {
	var paused []string
	for _, name := range profileNames(lanes) {
		if lanes[name].auth.isClosed() {
			paused = append(paused, name)
		}
	}
	return paused
}

// authPauseError says which profiles are paused for auth, or nil.
func authPauseError(lanes map[string]*lane) error {
	paused := pausedProfiles(lanes)
	if len(paused) == 0 {
		return nil
	}
	if len(lanes) == 1 {
		return errors.New("paused: the Coze API rejects the token")
	}
	working := len(lanes) - len(paused)
	return fmt.Errorf("paused: the Coze API rejects the token of profile %s (%d of %d profiles still working)",
		strings.Join(paused, ", "), working, len(lanes))
}

// pushedBack lists the profiles the API told to slow down within d of now.
func pushedBack(lanes map[string]*lane, now time.Time, d time.Duration) []*lane {
	var out []*lane
	for _, name := range profileNames(lanes) {
		if l := lanes[name]; now.Sub(time.Unix(0, l.lastPushback.Load())) < d {
			out = append(out, l)
		}
	}
	return out
}
