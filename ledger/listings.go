package ledger

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Listing is one walk of the list endpoint recorded in a batch: a data
// subject's discovery, or a round of its verification. A listing's log ids
// let Coze find each page's call again.
type Listing struct {
	// Phase is [ListingDiscovery] or [ListingVerification].
	Phase string `json:"phase"`
	// Round is 0 for the discovery, the verification round (1, 2, …)
	// otherwise.
	Round       int    `json:"round"`
	BotID       string `json:"bot_id"`
	ConnectorID string `json:"connector_id"`
	// Pages and Found count the pages read and the conversations listed.
	Pages  int       `json:"pages"`
	Found  int       `json:"found"`
	LogIDs []string  `json:"log_ids"`
	At     time.Time `json:"at"`
	// Error says why the walk did not finish; empty when it did. It is
	// text from the API: treat it as hostile in CSV and on a terminal.
	Error string `json:"error,omitempty"`
}

// The phases of a [Listing].
const (
	ListingDiscovery    = "discovery"
	ListingVerification = "verification"
)

// MaxListings is how many listings a batch keeps: a subject on a few bots
// and connectors, listed a few rounds, needs dozens.
const MaxListings = 10_000

//go:embed lua/listing.lua
var listingSource string

var listingScript = script(listingSource)

// RecordListing appends li to batch's listings, kept as long as the batch
// (its retention, started again when it completes). The batch must exist,
// and hold fewer than [MaxListings]. The error text and each log id are
// cut to the lengths the ledger keeps of an API's text.
func (l *Ledger) RecordListing(ctx context.Context, batch string, li Listing) error {
	if err := li.check(); err != nil {
		return fmt.Errorf("ledger: record a listing of %s: %w", batch, err)
	}
	li.Error = truncate(li.Error, maxMsgBytes)
	ids := make([]string, len(li.LogIDs))
	for i, id := range li.LogIDs {
		ids[i] = truncate(id, maxLogIDBytes)
	}
	li.LogIDs, li.At = ids, li.At.UTC()
	body, err := json.Marshal(li)
	if err != nil {
		return fmt.Errorf("ledger: record a listing of %s: %w", batch, err)
	}
	err = l.run(ctx, listingScript, batch, MaxListings, body).Err()
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "NOBATCH"):
		return fmt.Errorf("ledger: record a listing of %s: no such batch", batch)
	case err != nil && strings.HasPrefix(err.Error(), "TOOMANY"):
		return fmt.Errorf("ledger: record a listing of %s: it has %d listings, the most a batch keeps", batch, MaxListings)
	case err != nil:
		return fmt.Errorf("ledger: record a listing of %s: %w", batch, err)
	}
	return nil
}

// check refuses a listing whose phase and round do not go together.
func (li Listing) check() error {
	switch {
	case li.Phase == ListingDiscovery && li.Round != 0:
		return fmt.Errorf("a discovery listing has round 0, not %d", li.Round)
	case li.Phase == ListingVerification && li.Round < 1:
		return fmt.Errorf("a verification listing has a round from 1, not %d", li.Round)
	case li.Phase != ListingDiscovery && li.Phase != ListingVerification:
		return fmt.Errorf("phase %q: use %s or %s", li.Phase, ListingDiscovery, ListingVerification)
	}
	return nil
}

// Listings returns batch's listings in the order they were recorded; none
// when the batch has none (or does not exist).
func (l *Ledger) Listings(ctx context.Context, batch string) ([]Listing, error) {
	raw, err := l.rdb.LRange(ctx, l.ks.BatchListings(batch), 0, MaxListings-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: listings of %s: %w", batch, err)
	}
	out := make([]Listing, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("ledger: listing %d of %s: %w", i+1, batch, err)
		}
	}
	return out, nil
}
