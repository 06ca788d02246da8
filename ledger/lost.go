package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBatchLost is wrapped by the errors of reads and writes that find that
// Redis lost a batch: it restarted empty, or was flushed, while the batch
// was being worked. Its records are gone and must not be rebuilt from what
// is left: the batch's input has to be enqueued again.
var ErrBatchLost = errors.New("batch lost")

// LostError says which batch was lost, and how that was seen. It wraps
// [ErrBatchLost].
type LostError struct {
	Batch  string
	Reason string
}

// Error names the batch and what to do about it.
func (e *LostError) Error() string {
	msg := "batch " + e.Batch + " was lost: Redis no longer holds it"
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg + "; its records are gone, so enqueue its input again"
}

// Unwrap returns [ErrBatchLost].
func (e *LostError) Unwrap() error { return ErrBatchLost }

//go:embed lua/marklost.lua
var markLostSource string

var markLostScript = script(markLostSource)

// MarkLost records that batch was lost at at, unless it is marked already
// or Redis still holds it. A reader that saw the batch and then finds it
// gone calls it, so that `status` and /readyz show the loss; wasOpen says
// whether the batch had ids pending when it was last seen.
func (l *Ledger) MarkLost(ctx context.Context, batch string, at time.Time, wasOpen bool) (bool, error) {
	return l.markLost(ctx, batch, at, wasOpen, false)
}

// MarkRolledBack records that batch was lost at at even though Redis holds
// it: Redis came back with older data (a snapshot, a lagging replica), so
// ids added or finished since then are missing from it, and what it holds
// must not complete as the batch's proof. Enqueueing its input again (into
// the same batch) ends the loss.
func (l *Ledger) MarkRolledBack(ctx context.Context, batch string, at time.Time) (bool, error) {
	return l.markLost(ctx, batch, at, true, true)
}

func (l *Ledger) markLost(ctx context.Context, batch string, at time.Time, wasOpen, present bool) (bool, error) {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	n, err := l.run(ctx, markLostScript, batch, at.UnixMilli(), flag(wasOpen), ttlSeconds(l.ttl), flag(present)).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: mark %s lost: %w", batch, err)
	}
	return n == 1, nil
}

// maxLostListed bounds how many lost batches one read returns: a loss is an
// incident that names a handful, and /readyz reads them on every probe.
const maxLostListed = 100

// LostBatches returns the lost batches that no batch of the same name has
// replaced since (enqueueing the input again creates one), oldest loss
// first, at most 100. Each has only Name, LostAt and LostOutcomes set; its
// State is [StateLost]. Losses older than the ledger's retention are
// forgotten.
func (l *Ledger) LostBatches(ctx context.Context) ([]Batch, error) {
	cutoff := time.Now().Add(-l.ttl).UnixMilli()
	if err := l.rdb.ZRemRangeByScore(ctx, l.ks.LostIndex(), "-inf", "("+strconv.FormatInt(cutoff, 10)).Err(); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	zs, err := l.rdb.ZRangeWithScores(ctx, l.ks.LostIndex(), 0, maxLostListed-1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]Batch, 0, len(zs))
	for _, z := range zs {
		name, _ := z.Member.(string)
		b, lost, err := l.lostBatch(ctx, name, time.UnixMilli(int64(z.Score)).UTC())
		if err != nil {
			return nil, err
		}
		if lost {
			out = append(out, b)
		}
	}
	return out, nil
}

// lostBatch states batch name, found lost at lostAt; lost is false when the
// batch was opened again since (its input enqueued again), whatever the
// clocks of the machines that marked and opened it say.
func (l *Ledger) lostBatch(ctx context.Context, name string, lostAt time.Time) (b Batch, lost bool, err error) {
	pipe := l.rdb.Pipeline()
	opens := pipe.HGet(ctx, l.ks.Batch(name), "opens")
	info := pipe.HMGet(ctx, l.ks.Lost(name), "_opens", "_open")
	fields := pipe.HLen(ctx, l.ks.Lost(name))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Batch{}, false, fmt.Errorf("ledger: lost batch %s: %w", name, err)
	}
	vals := info.Val()
	opensAtLoss, wasOpen := "0", "1" // markLost (prelude.lua) writes both; a record from before it had neither
	if len(vals) == 2 {
		if s, ok := vals[0].(string); ok {
			opensAtLoss = s
		}
		if s, ok := vals[1].(string); ok {
			wasOpen = s
		}
	}
	now, errNow := opens.Int64()
	then, _ := strconv.ParseInt(opensAtLoss, 10, 64)
	if errNow == nil && now > then {
		return Batch{}, false, nil
	}
	kept := int(fields.Val())
	for _, v := range vals {
		if v != nil {
			kept-- // the record's own fields, not outcomes
		}
	}
	return Batch{Name: name, LostAt: lostAt, LostOutcomes: max(kept, 0), LostWhileOpen: wasOpen == "1"}, true, nil
}

// BatchOrLost returns batch name as [Ledger.Batch] does, unless it is
// marked lost and was not opened since: then a Batch with only Name, LostAt
// and LostOutcomes set, whose State is [StateLost], whether Redis lacks the
// batch or holds older data of it.
func (l *Ledger) BatchOrLost(ctx context.Context, name string) (Batch, bool, error) {
	score, err := l.rdb.ZScore(ctx, l.ks.LostIndex(), name).Result()
	switch {
	case err == nil:
		b, lost, err := l.lostBatch(ctx, name, time.UnixMilli(int64(score)).UTC())
		if err != nil || lost {
			return b, lost, err
		}
	case !errors.Is(err, redis.Nil):
		return Batch{}, false, fmt.Errorf("ledger: %w", err)
	}
	return l.Batch(ctx, name)
}

// LostOutcomes calls fn for each outcome recorded for batch after it was
// lost: calls that were in flight when Redis lost it. They are not a proof
// of the batch, only of those calls.
func (l *Ledger) LostOutcomes(ctx context.Context, batch string, fn func(Entry) error) error {
	return l.scanEntries(ctx, l.ks.Lost(batch), func(e Entry) error {
		if strings.HasPrefix(e.ConversationID, "_") { // the record's own fields
			return nil
		}
		return fn(e)
	})
}

// DismissLost removes batch from the lost batches, for an operator who has
// dealt with the loss some other way than enqueueing the input again. The
// outcomes kept after the loss stay until they expire.
func (l *Ledger) DismissLost(ctx context.Context, batch string) (bool, error) {
	n, err := l.rdb.ZRem(ctx, l.ks.LostIndex(), batch).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: %w", err)
	}
	return n == 1, nil
}

// LossDetector notices that Redis lost the ledger's data: it checks that
// the ledger's epoch marker (a key written once, with no expiry) is still
// there, and watches Redis's own signs of a restart (its run_id, its
// uptime). A restart that kept the data (AOF, RDB) is a restart, not a
// loss; an epoch marker that is gone, or replaced, is a loss whatever
// Redis says. A worker and `run` each keep one and call Check every few
// seconds.
type LossDetector struct {
	l      *Ledger
	epoch  string
	runID  string
	uptime int64
	seq    int64 // the ledger's write count
}

// NewLossDetector returns a detector; its first Check sets the baseline.
func (l *Ledger) NewLossDetector() *LossDetector { return &LossDetector{l: l} }

// LossSign is what one Check found.
type LossSign struct {
	// Lost is true when the ledger's data is gone since the last check.
	Lost bool
	// Restarted is true when Redis restarted since the last check.
	Restarted bool
	// RolledBack is true for a loss where Redis still holds the ledger,
	// but older data of it (a snapshot, a lagging replica): its write
	// count went back. Batches it holds may lack ids added since.
	RolledBack bool
	// Reason says what was seen, in words for a log line.
	Reason string
}

// Check compares Redis with what the previous check saw. After a loss it
// writes a new epoch marker, so that the next check compares with the
// data set Redis holds now.
func (d *LossDetector) Check(ctx context.Context) (LossSign, error) {
	epochKey := d.l.ks.Epoch()
	fresh := newAdderID()
	pipe := d.l.rdb.Pipeline()
	set := pipe.SetNX(ctx, epochKey, fresh, 0)
	get := pipe.Get(ctx, epochKey)
	seqCmd := pipe.Get(ctx, d.l.ks.Seq())
	info := pipe.Info(ctx, "server", "persistence")
	_, _ = pipe.Exec(ctx) // each command's error is read below; INFO's may be "not supported"
	seq, seqErr := seqCmd.Int64()
	if errors.Is(seqErr, redis.Nil) {
		seqErr = nil // no write yet
	}
	if err := errors.Join(set.Err(), get.Err(), seqErr); err != nil {
		return LossSign{}, fmt.Errorf("ledger: check for data loss: %w", err)
	}
	fields := infoFields(info.Val()) // empty where INFO is not supported (an embedded Redis)
	runID := fields["run_id"]
	uptime, _ := strconv.ParseInt(fields["uptime_in_seconds"], 10, 64)
	var sign LossSign
	if d.epoch != "" {
		sign = d.compare(set.Val(), get.Val(), runID, uptime, seq, fields)
	}
	d.epoch, d.runID, d.uptime, d.seq = get.Val(), runID, uptime, seq
	return sign, nil
}

// compare judges a check against the last one: created tells whether this
// check had to write the epoch marker.
func (d *LossDetector) compare(created bool, epoch, runID string, uptime, seq int64, fields map[string]string) LossSign {
	var sign LossSign
	var why []string
	if d.runID != "" && runID != "" && runID != d.runID || uptime < d.uptime {
		sign.Restarted = true
		why = append(why, fmt.Sprintf("Redis restarted (run_id changed; up %d s)", uptime))
	}
	switch {
	case created:
		sign.Lost = true
		why = append(why, "the ledger's epoch marker "+d.l.ks.Epoch()+" is gone")
	case epoch != d.epoch:
		sign.Lost = true
		why = append(why, "the ledger's epoch marker "+d.l.ks.Epoch()+" was replaced")
	case seq < d.seq:
		sign.Lost, sign.RolledBack = true, true
		why = append(why, fmt.Sprintf("it came back with older data: the ledger's write count went back from %d to %d", d.seq, seq))
	case sign.Restarted:
		why = append(why, "its data was kept")
	}
	if sign.Lost && fields["aof_enabled"] == "0" {
		why = append(why, "its AOF is off")
	}
	sign.Reason = strings.Join(why, "; ")
	return sign
}

// infoFields reads INFO's "key:value" lines.
func infoFields(info string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = v
		}
	}
	return out
}
