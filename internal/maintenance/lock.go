package maintenance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Lock takes the lock named name for ttl unless another holder has it; the
// janitor takes one so that one worker of the fleet sweeps at a time. The
// lock is not released: it expires, which spaces the sweeps.
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, s.ks.Lock(name), holderID(), ttl).Result()
}

// holderID names a lock's holder, for whoever reads the key.
func holderID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
