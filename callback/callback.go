// Package callback tells a receiver that a batch is complete: an HTTP POST
// of the batch's summary as JSON, delivered by a queued task with retries, so
// a receiver that is down gets it later.
//
// Each delivery carries an Idempotency-Key header, the same on every attempt
// of one completion, so a receiver can drop the second copy that
// at-least-once delivery allows. When a secret is configured
// (COZE_ERASER_CALLBACK_SECRET) the request is signed: the
// X-Coze-Eraser-Signature header is "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>", where timestamp is the X-Coze-Eraser-Timestamp
// header in Unix seconds. [Verify] checks it.
package callback

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/coze-eraser/coze-eraser/ledger"
)

// TaskType is the asynq task type of a callback delivery.
const TaskType = "batch:callback"

// Queue is the asynq queue callback deliveries go to; every worker serves it.
const Queue = "callbacks"

// Headers of a callback request.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Coze-Eraser-Signature"
	HeaderTimestamp      = "X-Coze-Eraser-Timestamp"
)

// Summary is the JSON body of a callback: the batch as it stood when it
// completed.
type Summary struct {
	Batch       string    `json:"batch"`
	Note        string    `json:"note,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	DueAt       time.Time `json:"due_at"`
	CompletedAt time.Time `json:"completed_at"`
	// Completion counts the batch's completions: a batch reopened by
	// `failures retry` completes again, and calls back again.
	Completion int `json:"completion"`
	Total      int `json:"total"`
	Deleted    int `json:"deleted"`
	NotFound   int `json:"not_found"`
	Failed     int `json:"failed"`
	// OnTime is true when the batch completed by its due time.
	OnTime bool `json:"on_time"`
}

// Delivery is the payload of a callback task.
type Delivery struct {
	URL     string  `json:"url"`
	Summary Summary `json:"summary"`
}

// SummaryOf is the summary of completion c of batch b: the batch's fields
// with the tallies and time of that completion.
func SummaryOf(b ledger.Batch, c ledger.Completion) Summary {
	return Summary{
		Batch:       b.Name,
		Note:        b.Note,
		CreatedAt:   b.CreatedAt,
		DueAt:       b.DueAt,
		CompletedAt: c.CompletedAt,
		Completion:  c.N,
		Total:       c.Total,
		Deleted:     c.Deleted,
		NotFound:    c.NotFound,
		Failed:      c.Failed,
		OnTime:      !c.CompletedAt.After(b.DueAt),
	}
}

// MaxRetry is how many times a delivery is retried; with the worker's
// callback backoff (10 s doubling to 1 h) that is about four days.
const MaxRetry = 100

// Retention keeps a delivered callback's task, so that queueing the same
// completion again within it is refused as a duplicate.
const Retention = 7 * 24 * time.Hour

// IdempotencyKey identifies one completion of one batch.
func (s Summary) IdempotencyKey() string {
	return s.Batch + ":" + strconv.Itoa(s.Completion)
}

// NewTask returns the task that delivers d. Its task id is derived from the
// completion, so the same completion is never queued twice.
func NewTask(d Delivery, opts ...asynq.Option) (*asynq.Task, error) {
	body, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	opts = append([]asynq.Option{asynq.TaskID("cb:" + d.Summary.IdempotencyKey()), asynq.Queue(Queue),
		asynq.MaxRetry(MaxRetry), asynq.Retention(Retention)}, opts...)
	return asynq.NewTask(TaskType, body, opts...), nil
}

// Sign returns the signature header value of body sent at timestamp.
func Sign(secret []byte, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", timestamp)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a callback request's signature and that its timestamp is
// within tolerance of now, which stops an old request being replayed.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return errors.New("callback: missing or malformed " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("callback: timestamp is %v away from now", d.Round(time.Second))
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(header.Get(HeaderSignature)), []byte(want)) {
		return errors.New("callback: signature does not match")
	}
	return nil
}

// Sender delivers callbacks; it is the asynq handler of [TaskType].
type Sender struct {
	// Client sends the requests; default a client with a 10 s timeout.
	Client *http.Client
	// Secret signs the requests when not empty.
	Secret []byte
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ProcessTask posts one delivery. A 2xx answer ends it; anything else is an
// error, and asynq retries it with backoff.
func (s *Sender) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var d Delivery
	if err := json.Unmarshal(t.Payload(), &d); err != nil {
		return fmt.Errorf("%w: callback payload: %v", asynq.SkipRetry, err)
	}
	return s.Send(ctx, d)
}

// Send posts d once.
func (s *Sender) Send(ctx context.Context, d Delivery) error {
	body, err := json.Marshal(d.Summary)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: callback URL: %v", asynq.SkipRetry, err)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coze-eraser")
	req.Header.Set(HeaderIdempotencyKey, d.Summary.IdempotencyKey())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(s.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(s.Secret, ts, body))
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // its message repeats the URL, query and all
		}
		return fmt.Errorf("callback to %s: %w", redactQuery(d.URL), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback to %s: HTTP %d", redactQuery(d.URL), resp.StatusCode)
	}
	return nil
}

// redactQuery drops a URL's query, which may hold a receiver's token.
func redactQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
