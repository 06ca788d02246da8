package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSessionErased is wrapped by the error of an operation that needs a
// batch's session name after [Ledger.ScrubSessions] erased it: a new task
// of the batch could only act as another identity.
var ErrSessionErased = errors.New("session name erased")

// SessionHashPrefix starts every [SessionHash]: it names the function, so
// that a later change of it can be told apart.
const SessionHashPrefix = "hmac-sha256:"

// SessionHash returns the keyed hash of an end user's session name that a
// batch keeps once it completes: "hmac-sha256:" and the HMAC-SHA256 of
// session under key, in hex. Without the key, the hash does not tell
// which of a few million user ids it is; with it, a requester can check
// that a batch acted for a given user.
func SessionHash(key []byte, session string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(session))
	return SessionHashPrefix + hex.EncodeToString(mac.Sum(nil))
}

//go:embed lua/scrub.lua
var scrubSource string

var scrubScript = script(scrubSource)

// ErrNoSessionKey is returned by [Ledger.ScrubSessions] without a key.
var ErrNoSessionKey = errors.New("ledger: no session key: the session names of complete batches cannot be " +
	"replaced by their hash without one")

// ScrubSessions erases the session names of the batches that completed:
// each batch's name is replaced by its [SessionHash] under key, in one
// step per batch, so that the ledger keeps an end user's session name
// (personal data) only while it is needed to act as them. Batches not
// complete keep theirs; batches that no longer exist leave the index. It
// returns how many names it erased. A batch reopened after its name was
// erased cannot get new tasks (see [ErrSessionErased]); one reopened
// before keeps it.
//
// A worker calls it when it completes a batch, and the janitor as a
// backstop (a producer's seal can complete a batch, and holds no key).
func (l *Ledger) ScrubSessions(ctx context.Context, key []byte) (int, error) {
	if len(key) == 0 {
		return 0, ErrNoSessionKey
	}
	var names []string
	iter := l.rdb.SScan(ctx, l.ks.Sessions(), 0, "", 500).Iterator()
	for iter.Next(ctx) {
		names = append(names, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("ledger: sessions: %w", err)
	}
	return l.ScrubBatchSessions(ctx, key, names)
}

// ScrubBatchSessions is [Ledger.ScrubSessions] for the named batches
// only: what a worker calls for the batches an attempt just completed,
// without a scan of every batch that holds a session.
func (l *Ledger) ScrubBatchSessions(ctx context.Context, key []byte, batches []string) (int, error) {
	if len(key) == 0 {
		return 0, ErrNoSessionKey
	}
	scrubbed := 0
	for _, name := range batches {
		ok, err := l.scrubSession(ctx, name, key)
		if err != nil {
			return scrubbed, err
		}
		if ok {
			scrubbed++
		}
	}
	return scrubbed, nil
}

// scrubSession erases batch's session name if the batch is complete. The
// name is read here and hashed, never sent back to Redis: the script
// checks that the batch is still the instance that held it.
func (l *Ledger) scrubSession(ctx context.Context, batch string, key []byte) (bool, error) {
	m, err := l.rdb.HMGet(ctx, l.ks.Batch(batch), "complete", "instance", "session").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("ledger: scrub the session of %s: %w", batch, err)
	}
	complete, _ := m[0].(string)
	instance, _ := m[1].(string)
	session, held := m[2].(string)
	hash := ""
	switch {
	case held && complete != "1":
		return false, nil // still at work: it keeps the name
	case held:
		hash = SessionHash(key, session)
	}
	// Without a name (gone, or erased by another janitor) the script only
	// drops the batch from the index.
	n, err := l.run(ctx, scrubScript, batch, instance, hash, time.Now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: scrub the session of %s: %w", batch, err)
	}
	return n == 1, nil
}
