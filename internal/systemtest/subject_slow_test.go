//go:build slow

package systemtest

import (
	"testing"
	"time"
)

// TestListingAHundredThousand is acceptance 6 of the subjects issue at full
// size: 100,000 conversations of one session on one bot, listed into a
// batch at the profile's rate of 100 list calls a second (2,000 pages, about
// 20 s), beside 10,000 for comparison: the peak RSS of the listing process
// must not grow with the conversations.
func TestListingAHundredThousand(t *testing.T) {
	for _, n := range []int{10_000, 100_000} {
		rss, took, pages := listingScenario(t, n, 100)
		t.Logf("%d conversations: %d pages in %v (%.1f pages/s at a rate of 100), peak RSS %.1f MB",
			n, pages, took.Round(100*time.Millisecond), float64(pages)/took.Seconds(), float64(rss)/1e6)
	}
}
