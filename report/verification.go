package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// A data subject's batch (ledger.BatchSpec.Verify) has listings (its
// discovery's walks of the list endpoint, and each verification round's)
// and a verification, which its proof states after the batch's summary:
// in CSV as "# " comment lines, in JSONL as the summary's "discovery" and
// "verification" fields. Other batches' proofs are as they always were.

// ProofVerification is a data subject's batch's verification as the JSONL
// proof states it.
type ProofVerification struct {
	// State is "pending", "passed" or "failed" (ledger.VerificationState).
	State string `json:"state"`
	// Rounds is how many verification rounds ran.
	Rounds      int    `json:"rounds"`
	StillListed int    `json:"still_listed"`
	Unverified  int    `json:"unverified"`
	Reason      string `json:"reason"`
	// VerifiedAt is when it passed or failed; absent while pending.
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// Listings are the verification rounds' listings, in order.
	Listings []ledger.Listing `json:"listings"`
}

// proofSummary is the JSONL proof's summary: the batch's [Summary] and, for
// a batch with listings or a verification, those.
type proofSummary struct {
	Summary
	Discovery    *[]ledger.Listing  `json:"discovery,omitempty"`
	Verification *ProofVerification `json:"verification,omitempty"`
}

// verificationOf splits a batch's listings into its discovery's and its
// verification's; verification is nil for a batch that has neither a
// verification nor a verification listing, and both are nil for a batch
// that has no listing and no verification (its proof is a plain one).
func verificationOf(b ledger.Batch, listings []ledger.Listing) (discovery *[]ledger.Listing, verification *ProofVerification) {
	if b.Verification.State == ledger.VerificationNone && len(listings) == 0 {
		return nil, nil
	}
	found := []ledger.Listing{}
	var rounds []ledger.Listing
	for _, li := range listings {
		if li.LogIDs == nil {
			li.LogIDs = []string{}
		}
		if li.Phase == ledger.ListingDiscovery {
			found = append(found, li)
		} else {
			rounds = append(rounds, li)
		}
	}
	discovery = &found
	if b.Verification.State == ledger.VerificationNone && len(rounds) == 0 {
		return discovery, nil
	}
	v := b.Verification
	verification = &ProofVerification{State: string(v.State), Rounds: v.Round, StillListed: v.StillListed,
		Unverified: v.Unverified, Reason: v.Reason, Listings: rounds}
	if verification.Listings == nil {
		verification.Listings = []ledger.Listing{}
	}
	if !v.At.IsZero() {
		at := v.At
		verification.VerifiedAt = &at
	}
	return discovery, verification
}

// listingLines are the CSV proof's comment lines for a batch's listings and
// verification: name and value, the value escaped as a comment line needs
// (the API's text in it quoted or escaped: see [token]).
func listingLines(discovery *[]ledger.Listing, v *ProofVerification) [][2]string {
	var lines [][2]string
	if discovery != nil {
		for _, li := range *discovery {
			lines = append(lines, [2]string{"discovery", listingText(li)})
		}
	}
	if v == nil {
		return lines
	}
	for _, li := range v.Listings {
		lines = append(lines, [2]string{"verification round " + strconv.Itoa(li.Round), listingText(li)})
	}
	at := ""
	if v.VerifiedAt != nil {
		at = rfc3339(*v.VerifiedAt)
	}
	return append(lines, [2]string{"verification", fmt.Sprintf("state=%s rounds=%d still_listed=%d unverified=%d reason=%s verified_at=%s",
		v.State, v.Rounds, v.StillListed, v.Unverified, strconv.Quote(v.Reason), at)})
}

// listingText states one listing on one line: the bot and connector, pages,
// conversations found, when, each page's log id, and why the walk did not
// finish when it did not.
func listingText(li ledger.Listing) string {
	ids := make([]string, len(li.LogIDs))
	for i, id := range li.LogIDs {
		ids[i] = token(id)
	}
	s := fmt.Sprintf("bot=%s connector=%s pages=%d found=%d at=%s log_ids=%s", token(li.BotID), token(li.ConnectorID),
		li.Pages, li.Found, rfc3339(li.At), strings.Join(ids, " "))
	if li.Error != "" {
		s += " error=" + strconv.Quote(li.Error)
	}
	return s
}

// token writes an identifier from the API (a log id, a bot id) so that it
// reads as one word of plain text: each byte other than an ASCII letter,
// digit, '.', '_', ':' or '-' is written "\xNN". A log id is such a word;
// anything else in one (a space, a formula's '=', a control) is shown, not
// obeyed.
func token(s string) string {
	if strings.IndexFunc(s, notTokenRune) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && !notTokenRune(rune(c)) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, `\x%02x`, c)
	}
	return b.String()
}

func notTokenRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == ':', r == '-':
		return false
	}
	return true
}

// StatusVerification is a data subject's batch's verification as
// `status --format json` shows it.
type StatusVerification struct {
	// State is "pending", "passed" or "failed".
	State       string `json:"state"`
	StillListed int    `json:"still_listed"`
}

// verificationNote is a word or two on b's verification for the status
// table and progress bar: "verifying" while its ids are all done and its
// verification pending, "verified" or "verification failed" once it
// ended; "" for a batch that is not verified or is still deleting.
func verificationNote(b ledger.Batch) string {
	switch b.Verification.State {
	case ledger.VerificationPending:
		if b.Pending() == 0 {
			return "verifying"
		}
	case ledger.VerificationPassed:
		return "verified"
	case ledger.VerificationFailed:
		return "verification failed"
	}
	return ""
}

// stateText is the status table's STATE cell: the state, and the
// verification's note when it says more.
func stateText(b ledger.Batch, state string) string {
	note := verificationNote(b)
	if note == "" || note == state {
		return state
	}
	return state + " (" + note + ")"
}

// verificationFields is the progress line's tail for a verified batch:
// its verification's state, the ids found still listed, and why it
// failed (the API's text, escaped).
func verificationFields(b ledger.Batch) string {
	v := b.Verification
	if v.State == ledger.VerificationNone {
		return ""
	}
	s := fmt.Sprintf(" verification=%s still_listed=%d", v.State, v.StillListed)
	if v.Unverified > 0 {
		s += " unverified=" + strconv.Itoa(v.Unverified)
	}
	if v.Reason != "" {
		s += " reason=" + Printable(strconv.Quote(v.Reason))
	}
	return s
}
