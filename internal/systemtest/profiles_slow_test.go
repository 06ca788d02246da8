//go:build slow

package systemtest

import (
	"testing"
	"time"
)

// TestSessionsOfOneAppFullSize is acceptance run 1 of the identities
// issue at full size: 20,000 ids owned by 200 sessions of one OAuth app,
// the fake's tokens living 60 s, a worker at about 111 calls a second, so
// that the run lasts about 3 minutes and every session renews its token.
//
//	go test -tags slow -run TestSessionsOfOneAppFullSize -v ./internal/systemtest/
func TestSessionsOfOneAppFullSize(t *testing.T) {
	t.Parallel()
	took, mints := sessionsScenario(t, 20_000, 200, time.Minute, 111)
	most := 0
	total := 0
	for _, n := range mints {
		most = max(most, n)
		total += n
	}
	t.Logf("20,000 ids, 200 sessions: %v; mints: %d in all, at most %d per session", took.Round(time.Second), total, most)
}
