package ledger

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// A data subject's erasure lists every conversation of the subject's
// session, deletes them, and then lists again as the same session: Coze
// answers "not found" also to a caller who may not see a conversation, so
// only a listing that no longer shows an id proves it gone. Such a batch
// (BatchSpec.Verify) does not complete when its ids all have an outcome:
// the ledger asks for a verification round instead (the verification
// outbox, [Ledger.PendingVerifications]), whose task lists again, marks the
// ids still listed ([Ledger.MarkStillListed]), adds conversations created
// since to the batch ([Ledger.StartVerificationRound]: they are deleted and
// the next round verifies them) or ends the verification
// ([Ledger.FinishVerification]), which completes the batch.

// VerificationState is where a data subject's batch stands in its
// verification.
type VerificationState string

// The verification states.
const (
	// VerificationNone: the batch is not verified (not a data subject's
	// erasure).
	VerificationNone VerificationState = ""
	// VerificationPending: set when a Verify batch is created, and again
	// when its ids change (reopened, or new ones added); until a round
	// ends the verification.
	VerificationPending VerificationState = "pending"
	// VerificationPassed: the last round listed none of the batch's ids
	// and nothing new.
	VerificationPassed VerificationState = "passed"
	// VerificationFailed: ids of the batch were still listed, new
	// conversations remained past the last round, or a round could not
	// list (Verification.Reason).
	VerificationFailed VerificationState = "failed"
)

// Verification is a data subject's batch's verification.
type Verification struct {
	State VerificationState
	// Round is how many verification rounds ran: those that found new
	// conversations ([Ledger.StartVerificationRound]) and the one that
	// ended the verification. The next round is Round + 1; a batch
	// reopened after its verification keeps counting.
	Round int
	// StillListed counts the ids of the batch a verification listing
	// showed again (each id once, until failures retry reopens it).
	StillListed int
	// Unverified counts the conversations the last allowed round found
	// that the batch did not hold: not erased (beyond the bound).
	Unverified int
	// Reason says why the verification failed when not (only) by ids
	// still listed or unverified, e.g. "listing failed: …". It may quote
	// the API: treat it as hostile text in CSV and on a terminal.
	Reason string
	// At is when the verification passed or failed; zero while pending.
	At time.Time
}

func decodeVerification(h map[string]string) Verification {
	atoi := func(k string) int { n, _ := strconv.Atoi(h[k]); return n }
	v := Verification{
		State:       VerificationState(h["verification"]),
		Round:       atoi("verify_round"),
		StillListed: atoi("still_listed"),
		Unverified:  atoi("unverified"),
		Reason:      h["verification_reason"],
	}
	if v.State == VerificationNone {
		v.State = VerificationPending
	}
	if ms, err := strconv.ParseInt(h["verified_at"], 10, 64); err == nil && v.State != VerificationPending {
		v.At = time.UnixMilli(ms).UTC()
	}
	return v
}

// VerifyRequest asks for round Round of batch Batch's verification: the
// batch's ids all have an outcome, and its verification is pending.
type VerifyRequest struct {
	Batch string
	Round int
}

// maxVerifyRequests bounds one read of the verification outbox.
const maxVerifyRequests = 1000

// PendingVerifications returns the verification rounds whose task is not
// queued yet (the verification outbox), at most 1000, in no particular
// order. The ledger asks for each round once; queue its task (with an id
// derived from the batch and the round, so that a second queueing is a
// duplicate), then call [Ledger.VerificationQueued]. Entries it cannot read
// are left out (and left in the outbox).
func (l *Ledger) PendingVerifications(ctx context.Context) ([]VerifyRequest, error) {
	members, err := l.rdb.SRandMemberN(ctx, l.ks.Verifications(), maxVerifyRequests).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: verification outbox: %w", err)
	}
	out := make([]VerifyRequest, 0, len(members))
	for _, m := range members {
		if r, ok := parseVerifyMember(m); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseVerifyMember reads "batch/round" (keyspace.VerifyMember).
func parseVerifyMember(m string) (VerifyRequest, bool) {
	i := strings.LastIndexByte(m, '/')
	if i <= 0 {
		return VerifyRequest{}, false
	}
	round, err := strconv.Atoi(m[i+1:])
	if err != nil || round < 1 {
		return VerifyRequest{}, false
	}
	return VerifyRequest{Batch: m[:i], Round: round}, true
}

// VerificationQueued removes a request from the verification outbox.
func (l *Ledger) VerificationQueued(ctx context.Context, r VerifyRequest) error {
	if err := l.rdb.SRem(ctx, l.ks.Verifications(), keyspace.VerifyMember(r.Batch, r.Round)).Err(); err != nil {
		return fmt.Errorf("ledger: verification outbox: %w", err)
	}
	return nil
}

// maxLookupIDs bounds the ids of one [Ledger.Lookup] or
// [Ledger.MarkStillListed] call: a page of the list endpoint holds 50.
const maxLookupIDs = 1000

// validIDs keeps the ids that can be in a batch (tasks.ValidateID): the
// list endpoint's answer is not trusted to hold only those.
func validIDs(ids []string) ([]any, error) {
	if len(ids) > maxLookupIDs {
		return nil, fmt.Errorf("ledger: %d ids in one call: at most %d", len(ids), maxLookupIDs)
	}
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		if tasks.ValidateID(id) == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

//go:embed lua/lookup.lua
var lookupSource string

var lookupScript = script(lookupSource)

// Lookup returns the entries of those of ids that are in batch, in one
// round trip: what a verification does with each page it lists. Ids not in
// the batch (or not conversation ids at all) are not in the map; nor is
// anything when the batch does not exist. At most 1000 ids a call.
func (l *Ledger) Lookup(ctx context.Context, batch string, ids []string) (map[string]Entry, error) {
	valid, err := validIDs(ids)
	if err != nil || len(valid) == 0 {
		return map[string]Entry{}, err
	}
	res, err := l.run(ctx, lookupScript, append([]any{batch}, valid...)...).Slice()
	if err != nil {
		return nil, fmt.Errorf("ledger: look up ids of %s: %w", batch, err)
	}
	out := make(map[string]Entry, len(res))
	for i, v := range res {
		if i >= len(valid) {
			return nil, &replyError{"lookup.lua", res, fmt.Sprintf("%d values", len(valid))}
		}
		if v == nil {
			continue // go-redis reads Lua's false as nil
		}
		value, err := replyText("lookup.lua", v)
		if err != nil {
			return nil, err
		}
		id, _ := valid[i].(string)
		out[id] = decodeEntry(id, value)
	}
	return out, nil
}

//go:embed lua/stilllisted.lua
var stillListedSource string

var stillListedScript = script(stillListedSource)

// StillListedCode is the code of the entry (and failure record) of an id
// that a verification listing showed again: it is failed whatever its
// DELETE answered.
const StillListedCode = "still_listed"

// maxLogIDBytes bounds a log id the ledger keeps from a list call.
const maxLogIDBytes = 128

// MarkStillListed records each of ids that verification round round listed
// again (on the page whose list call has log id listLogID) as still
// listed: an id of the batch with an outcome (deleted, not_found or failed)
// becomes failed, its entry's code [StillListedCode] and log id listLogID;
// its failure record gets outcome failed, code "still_listed", log id
// listLogID, its attempts kept, and the msg "still listed (verification
// round N; the DELETE answered OUTCOME CODE: MSG)", which keeps what the
// DELETE had answered. Tallies move (deleted or not_found -1, failed +1)
// and the verification's still-listed count +1, each only the first time
// an id is marked: a later round listing it again, or a retried task,
// changes nothing. Pending ids, ids not in the batch, and every id of a
// batch whose verification is not pending are skipped. It returns how many
// ids it marked. A batch that is not verified is an error.
func (l *Ledger) MarkStillListed(ctx context.Context, batch string, round int, ids []string, listLogID string, now time.Time) (int, error) {
	if round < 1 {
		return 0, fmt.Errorf("ledger: mark ids of %s still listed: round %d: rounds start at 1", batch, round)
	}
	valid, err := validIDs(ids)
	if err != nil || len(valid) == 0 {
		return 0, err
	}
	logID := truncate(strings.ReplaceAll(listLogID, "|", "/"), maxLogIDBytes)
	args := append([]any{batch, round, logID, now.UnixMilli(), now.Unix(), maxMsgBytes}, valid...)
	n, err := l.run(ctx, stillListedScript, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("ledger: mark ids of %s still listed: %w", batch, err)
	}
	return n, nil
}

//go:embed lua/targets.lua
var targetsSource string

var targetsScript = script(targetsSource)

// Target is a bot and connector a data subject's batch looks on.
type Target struct {
	BotID       string
	ConnectorID string
}

// RecordTargets records, in the verified batch batch, the bots and
// connectors its discovery is about to list (added to those recorded
// before). Its verification lists each of them, even one the discovery
// never reached: a producer that died mid-walk leaves held ids the
// janitor releases, and a verification of only what was recorded would
// prove too much. It reports false when the batch does not exist or is
// not verified.
func (l *Ledger) RecordTargets(ctx context.Context, batch string, targets []Target) (bool, error) {
	args := []any{batch}
	for _, t := range targets {
		if !plainID(t.BotID) || !plainID(t.ConnectorID) {
			return false, fmt.Errorf("ledger: target %q/%q: bot and connector ids are digits", t.BotID, t.ConnectorID)
		}
		args = append(args, t.BotID+":"+t.ConnectorID)
	}
	n, err := l.run(ctx, targetsScript, args...).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: record the targets of %s: %w", batch, err)
	}
	return n == 1, nil
}

// plainID reports whether s is 1 to 32 ASCII digits.
func plainID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decodeTargets reads a batch's "targets" field.
func decodeTargets(field string) []Target {
	var out []Target
	for _, t := range strings.Fields(field) {
		bot, connector, ok := strings.Cut(t, ":")
		if ok {
			out = append(out, Target{BotID: bot, ConnectorID: connector})
		}
	}
	return out
}

//go:embed lua/verifystart.lua
var verifyStartSource string

var verifyStartScript = script(verifyStartSource)

// StartVerificationRound records that verification round round found
// conversations the batch did not hold, which the caller adds to the batch
// (enqueue's Hold, then Release) to be deleted; once they all have an
// outcome, the ledger asks for round round+1. It does so only when round
// is the batch's next round (Verification.Round is round-1) and its
// verification is pending, and reports false otherwise: a duplicate task
// changes nothing.
func (l *Ledger) StartVerificationRound(ctx context.Context, batch string, round int) (bool, error) {
	n, err := l.run(ctx, verifyStartScript, batch, round).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: start verification round %d of %s: %w", round, batch, err)
	}
	return n == 1, nil
}

//go:embed lua/verifyfinish.lua
var verifyFinishSource string

var verifyFinishScript = script(verifyFinishSource)

// FinishVerification ends the batch's verification at round round: passed
// when no id of the batch was found still listed, unverified is 0 and
// reason is empty; failed otherwise, with unverified (conversations found
// new by the last allowed round) and reason (why, when a round could not
// verify: "listing failed: …") kept. It then completes the batch as any
// other (its callback queued, the open index left, the retention started)
// unless something else holds it (ids pending, a producer adding), and
// reports whether it completed it. Only the batch's current round ends it
// (Verification.Round is round-1, or round when that round started and the
// ledger has not asked for the next one yet) and only while the
// verification is pending: otherwise it changes nothing and returns false,
// nil.
func (l *Ledger) FinishVerification(ctx context.Context, batch string, round int, unverified int, reason string, now time.Time) (completed bool, err error) {
	n, err := l.run(ctx, verifyFinishScript, batch, round, max(unverified, 0), truncate(reason, maxMsgBytes), now.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: finish the verification of %s: %w", batch, err)
	}
	return n == 2, nil
}

// boolArg is a flag as the scripts read it.
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
