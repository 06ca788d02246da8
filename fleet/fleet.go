// Package fleet is what the workers say about themselves, for the console
// and for each other: every few seconds each worker writes a [Report] of
// the queues it serves and, per profile, whether its calls are paused
// because the API rejects the token and how the profile's rate stands.
// Reports expire: a worker that stops reporting (SIGKILL, a partition)
// drops out within [TTL].
//
// asynq's own heartbeat (Inspector.Servers) says which queues a process
// serves; it cannot say what is coze-eraser's own: profiles, auth pauses,
// rates. Neither the report nor its key holds a session name, a token or
// an id.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
)

// TTL is how long a report lasts: three missed reports at
// [DefaultInterval].
const TTL = 30 * time.Second

// DefaultInterval is how often a worker reports.
const DefaultInterval = 5 * time.Second

// Report is one worker's state.
type Report struct {
	// Instance names the worker: host, process id and a random part.
	Instance string `json:"instance"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	// Queues are the queues it serves, with their weights.
	Queues      map[string]int `json:"queues"`
	Concurrency int            `json:"concurrency"`
	Started     time.Time      `json:"started"`
	// At is when the report was made.
	At       time.Time `json:"at"`
	Profiles []Profile `json:"profiles"`
}

// Profile is one profile's state in one worker.
type Profile struct {
	Name string `json:"name"`
	// AuthPaused is true while the API rejects the profile's token: its
	// calls wait, and one probe per interval tries again. Since is when
	// the pause began.
	AuthPaused      bool       `json:"auth_paused"`
	AuthPausedSince *time.Time `json:"auth_paused_since,omitempty"`
	// ConfiguredRate is the fleet budget's rate in calls per second (0:
	// no budget); EffectiveRate the rate it runs at now, lower after the
	// API pushed back when the budget is adaptive.
	ConfiguredRate float64 `json:"configured_rate"`
	EffectiveRate  float64 `json:"effective_rate"`
	// LastPushback is when the API last answered "slow down" (HTTP 429
	// or code 4013) to this worker.
	LastPushback *time.Time `json:"last_pushback,omitempty"`
	// Waiting counts the tasks waiting here for the profile's turn.
	Waiting int `json:"waiting"`
}

// Instance returns a name for this process: its host, process id and a
// random part, made safe for a Redis key.
func Instance(random string) string {
	host, _ := os.Hostname()
	return keySafe(fmt.Sprintf("%s-%d-%s", host, os.Getpid(), random))
}

// keySafe keeps letters, digits, '.', '-' and '_' of s (others become
// '_'), at most 100 bytes.
func keySafe(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// Publish writes r under prefix's keys, to last [TTL].
func Publish(ctx context.Context, rdb redis.UniversalClient, prefix string, r Report) error {
	if r.Instance == "" || keySafe(r.Instance) != r.Instance {
		return errors.New("fleet: Report.Instance must be a name from Instance")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ks := keyspace.New(prefix)
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, ks.Worker(r.Instance), body, TTL)
		p.ZAdd(ctx, ks.Workers(), redis.Z{Score: float64(r.At.UnixMilli()), Member: r.Instance})
		// The index is trimmed with a wide margin: the reports' own TTL
		// says which are live, and a worker whose clock runs ahead must
		// not drop the others from the index.
		p.ZRemRangeByScore(ctx, ks.Workers(), "-inf", strconv.FormatInt(r.At.Add(-indexMargin).UnixMilli(), 10))
		return nil
	})
	return err
}

// Withdraw removes instance's report: the worker stopped.
func Withdraw(ctx context.Context, rdb redis.UniversalClient, prefix, instance string) error {
	ks := keyspace.New(prefix)
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, ks.Worker(instance))
		p.ZRem(ctx, ks.Workers(), instance)
		return nil
	})
	return err
}

// indexMargin is how long an instance stays in the index after its last
// report. Only Redis's TTL on the report itself decides whether it is
// live: hosts' clocks differ.
const indexMargin = 10 * TTL

// Read returns the live reports under prefix (those whose key has not
// expired), by instance name. now bounds the index read with a wide
// margin (see indexMargin), so a host's clock skew hides no worker.
func Read(ctx context.Context, rdb redis.UniversalClient, prefix string, now time.Time) ([]Report, error) {
	ks := keyspace.New(prefix)
	names, err := rdb.ZRangeByScore(ctx, ks.Workers(), &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-indexMargin).UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = ks.Worker(n)
	}
	vals, err := rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired: the worker stopped reporting
		}
		var r Report
		if json.Unmarshal([]byte(s), &r) == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Instance, b.Instance) })
	return out, nil
}

// ProfileState is a profile's state over the fleet.
type ProfileState struct {
	Name string
	// Workers counts the live workers acting as the profile; Paused
	// those of them whose calls are paused for auth, since the earliest
	// PausedSince.
	Workers     int
	Paused      int
	PausedSince time.Time
	// ConfiguredRate is the budget's rate (the same in every worker that
	// shares it); EffectiveRate the lowest a worker with a budget runs at.
	ConfiguredRate float64
	EffectiveRate  float64
	// LastPushback is the latest "slow down" any worker got.
	LastPushback time.Time
	Waiting      int
}

// Profiles folds reports into one state per profile, by name.
func Profiles(reports []Report) []ProfileState {
	byName := map[string]*ProfileState{}
	for _, r := range reports {
		for _, p := range r.Profiles {
			st := byName[p.Name]
			if st == nil {
				st = &ProfileState{Name: p.Name}
				byName[p.Name] = st
			}
			st.Workers++
			st.Waiting += p.Waiting
			// A worker without a budget (rate 0) says nothing of the
			// budget the others share.
			st.ConfiguredRate = max(st.ConfiguredRate, p.ConfiguredRate)
			if p.EffectiveRate > 0 && (st.EffectiveRate == 0 || p.EffectiveRate < st.EffectiveRate) {
				st.EffectiveRate = p.EffectiveRate
			}
			if p.AuthPaused {
				st.Paused++
				if p.AuthPausedSince != nil && (st.PausedSince.IsZero() || p.AuthPausedSince.Before(st.PausedSince)) {
					st.PausedSince = *p.AuthPausedSince
				}
			}
			if p.LastPushback != nil && p.LastPushback.After(st.LastPushback) {
				st.LastPushback = *p.LastPushback
			}
		}
	}
	out := make([]ProfileState, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ProfileState) int { return strings.Compare(a.Name, b.Name) })
	return out
}
