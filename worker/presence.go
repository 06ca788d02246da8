package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/coze-eraser/coze-eraser/fleet"
)

// presence reports the worker to the fleet (package fleet) every
// fleet.DefaultInterval, and withdraws the report when the worker stops,
// so that the console shows each profile's auth pause and rate.
type presence struct {
	s        *Server
	instance string
	started  time.Time
	// kick asks for a report now: a profile's auth pause began or ended.
	kick chan struct{}
}

func newPresence(s *Server) *presence {
	var raw [4]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	return &presence{s: s, instance: fleet.Instance(hex.EncodeToString(raw[:])), started: s.cfg.Now(),
		kick: make(chan struct{}, 1)}
}

// poke asks for a report now; one pending ask is enough.
func (p *presence) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run reports until ctx ends, then withdraws the report.
func (p *presence) run(ctx context.Context) {
	tick := time.NewTicker(fleet.DefaultInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		p.publish(ctx)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-p.kick:
		}
	}
	withdraw, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = fleet.Withdraw(withdraw, p.s.cfg.Redis, p.s.cfg.Ledger.Prefix(), p.instance) // it expires anyway
}

// publish writes one report; a failure waits for the next (the report
// expires, and Redis errors are logged by the worker's own checks).
func (p *presence) publish(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, fleet.DefaultInterval)
	defer cancel()
	_ = fleet.Publish(ctx, p.s.cfg.Redis, p.s.cfg.Ledger.Prefix(), p.report())
}

// report is the worker's state now.
func (p *presence) report() fleet.Report {
	host, _ := os.Hostname()
	r := fleet.Report{Instance: p.instance, Host: host, PID: os.Getpid(), Queues: maps.Clone(p.s.cfg.Queues),
		Concurrency: p.s.cfg.Concurrency, Started: p.started, At: p.s.cfg.Now()}
	for _, name := range slices.Sorted(maps.Keys(p.s.lanes)) {
		r.Profiles = append(r.Profiles, p.s.lanes[name].state())
	}
	return r
}

// state is the lane's profile as the fleet report shows it.
func (l *lane) state() fleet.Profile {
	st := fleet.Profile{Name: l.profile, Waiting: int(l.waiting.Load())}
	if st.AuthPaused = l.auth.isClosed(); st.AuthPaused {
		if since := l.authPausedSince.Load(); since != 0 {
			at := time.Unix(0, since)
			st.AuthPausedSince = &at
		}
	}
	if l.limiter != nil {
		st.ConfiguredRate, st.EffectiveRate = l.limiter.Configured(), l.limiter.Effective()
	}
	if ns := l.lastPushback.Load(); ns != 0 {
		at := time.Unix(0, ns)
		st.LastPushback = &at
	}
	return st
}
