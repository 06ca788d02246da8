package tasks

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// TypeVerify is the asynq task type of a batch's verification: once every
// deletion of a data subject's batch has an outcome, a worker lists the
// subject's conversations again, as the same session, to see that none of
// them is still there.
const TypeVerify = "batch:verify"

// MaxVerifyRounds bounds a batch's verification. Each round lists the
// subject's conversations again; conversations created since the last
// listing are added to the batch, deleted, and the next round verifies
// them. The last round deletes nothing more: what it still finds new is
// counted as not verified. (A batch whose failures are retried after its
// verification verifies again; its rounds past this one are last rounds.)
const MaxVerifyRounds = 3

// maxRoundNumber bounds a round's number, which failures retries of a
// verified batch push past MaxVerifyRounds.
const maxRoundNumber = 1_000_000

// VerifyTimeout is how long one verification round may list before asynq
// counts it as failed: a bot with a million conversations of one session
// is 20,000 pages.
const VerifyTimeout = 2 * time.Hour

// VerifyMaxRetry is how many times a round whose listing fails is tried
// again (with the worker's retry backoff) before the verification is
// recorded as failed.
const VerifyMaxRetry = 12

// VerifyPayload is the JSON body of a [TypeVerify] task. It names the batch
// and the round and nothing else: the identity to list as is the batch's,
// read from the ledger (the session name is personal data, kept in one
// place).
type VerifyPayload struct {
	Batch string `json:"batch"`
	Round int    `json:"round"`
}

// VerifyTaskID is the asynq task id of round round of batch's
// verification: a round queued twice is refused as a duplicate.
func VerifyTaskID(batch string, round int) string {
	return "verify:" + batch + ":" + strconv.Itoa(round)
}

// NewVerifyTask returns the task of round round of batch's verification,
// for queue (the batch's first queue: a worker serving the batch serves
// its verification).
func NewVerifyTask(batch string, round int, queue string) (*asynq.Task, error) {
	p := VerifyPayload{Batch: batch, Round: round}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := ValidateQueue(queue); err != nil {
		return nil, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeVerify, body, asynq.TaskID(VerifyTaskID(batch, round)), asynq.Queue(queue),
		asynq.MaxRetry(VerifyMaxRetry), asynq.Timeout(VerifyTimeout), asynq.Retention(24*time.Hour)), nil
}

// Validate checks the batch name and the round.
func (p VerifyPayload) Validate() error {
	if err := ValidateBatch(p.Batch); err != nil {
		return err
	}
	// A batch whose failures are retried after its verification ended
	// verifies again, in rounds past MaxVerifyRounds (each a last round).
	if p.Round < 1 || p.Round > maxRoundNumber {
		return fmt.Errorf("verification round %d: want 1 to %d", p.Round, maxRoundNumber)
	}
	return nil
}

// DecodeVerify reads and validates a [TypeVerify] task's payload.
func DecodeVerify(body []byte) (VerifyPayload, error) {
	var p VerifyPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("verification task: %w", err)
	}
	return p, p.Validate()
}
