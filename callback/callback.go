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
	"log/slog"
	"net"
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
	// Cancelled counts the ids a cancel of the batch ended before they had
	// an outcome (left out when none).
	Cancelled int `json:"cancelled,omitempty"`
	// Invalid counts the input lines the batch refused as not
	// conversation ids, as the batch holds it when the callback is queued:
	// a batch of Total 0 had only those, and nothing to erase.
	Invalid int `json:"invalid"`
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
		Cancelled:   c.Cancelled,
		Invalid:     b.Invalid,
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

// DefaultTimeout is how long the default client waits for a receiver:
// connecting, sending and the answer's headers. A later answer is a failed
// delivery, and the summary is posted again at the next retry.
const DefaultTimeout = 10 * time.Second

// MaxURLLength is the longest callback URL [ValidateURL] accepts.
const MaxURLLength = 2048

// ValidateURL checks that raw can be a callback URL: an absolute http or
// https URL with a host, a port (if any) from 1 to 65535, no user name or
// password, no fragment, no spaces or control characters, and at most
// [MaxURLLength] bytes. Its errors name the rule broken, never the URL,
// which may hold a credential.
func ValidateURL(raw string) error {
	switch {
	case raw == "":
		return errors.New("must not be empty")
	case len(raw) > MaxURLLength:
		return fmt.Errorf("is %d bytes long; at most %d are allowed", len(raw), MaxURLLength)
	case strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("must not hold spaces or control characters (escape them, e.g. %20)")
	case strings.Contains(raw, "#"):
		return errors.New("must not have a fragment (#…): receivers never see it")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a valid URL: %v", unwrapURLError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: must be an absolute http:// or https:// URL", u.Scheme)
	case u.Opaque != "":
		return errors.New("must be an absolute URL of the form http(s)://host/path")
	case u.User != nil:
		return errors.New("must not hold a user name or password (user:pass@): they would be stored and shown in task errors; " +
			"let the receiver check the signature (COZE_ERASER_CALLBACK_SECRET) or a token in the query instead")
	case u.Hostname() == "":
		return errors.New("has no host")
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q: must be a number from 1 to 65535", port)
		}
	}
	return nil
}

// Redact returns a URL fit for errors and logs: without its user name,
// password, query and fragment, which may hold credentials. A query is
// shown as "?…" so that a reader knows there was one.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return redactUnparsed(raw)
	}
	hadQuery := u.RawQuery != "" || u.ForceQuery || u.Fragment != ""
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if hadQuery {
		return u.String() + "?…"
	}
	return u.String()
}

// redactUnparsed redacts what url.Parse refused, without its help: the part
// after the first "?" or "#" goes, and so does everything of the authority
// up to its last "@".
func redactUnparsed(raw string) string {
	suffix := ""
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw, suffix = raw[:i], "?…"
	}
	prefix, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	authority, path := rest, ""
	if i := strings.Index(rest, "/"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, prefix+authority+path) + suffix
}

// Outcome is the result of one delivery attempt: delivered, or why not.
type Outcome string

// Outcomes of a delivery attempt.
const (
	// OutcomeDelivered: the receiver answered 2xx in time.
	OutcomeDelivered Outcome = "delivered"
	// OutcomeTimeout: no answer within the client's timeout.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeConnection: the request could not be sent or its answer read
	// (DNS, refused connection, TLS, reset).
	OutcomeConnection Outcome = "connection"
	// OutcomeHTTPStatus: the receiver answered other than 2xx or 3xx.
	OutcomeHTTPStatus Outcome = "http_status"
	// OutcomeRedirect: the receiver answered 3xx; redirects are never
	// followed, since they would send the summary and its signature to
	// another address, or turn the POST into a bodiless GET.
	OutcomeRedirect Outcome = "redirect"
	// OutcomeInvalid: the task cannot be sent at all (bad payload or URL);
	// it is not retried.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeCanceled: the worker stopped during the attempt; asynq hands
	// the task back to the queue.
	OutcomeCanceled Outcome = "canceled"
)

// Outcomes lists every [Outcome], so that a metric can start each series at
// zero.
var Outcomes = []Outcome{OutcomeDelivered, OutcomeTimeout, OutcomeConnection, OutcomeHTTPStatus,
	OutcomeRedirect, OutcomeInvalid, OutcomeCanceled}

// Sender delivers callbacks; it is the asynq handler of [TaskType].
type Sender struct {
	// Client sends the requests; default a client with [DefaultTimeout].
	// Redirects are never followed, whatever the client's CheckRedirect:
	// the Sender uses a copy of it.
	Client *http.Client
	// Secret signs the requests when not empty.
	Secret []byte
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one line per failed attempt; default slog.Default().
	Logger *slog.Logger
	// OnResult, when set, is called with the outcome of every attempt, for
	// metrics.
	OnResult func(Outcome)
}

// ProcessTask posts one delivery. A 2xx answer ends it; anything else is an
// error, and asynq retries it with backoff.
func (s *Sender) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var d Delivery
	if err := json.Unmarshal(t.Payload(), &d); err != nil {
		err = fmt.Errorf("%w: callback payload: %v", asynq.SkipRetry, err)
		s.report(ctx, d, OutcomeInvalid, err)
		return err
	}
	return s.Send(ctx, d)
}

// Send posts d once, and logs and reports the outcome. Its errors and log
// lines show the URL without userinfo or query (see [Redact]).
func (s *Sender) Send(ctx context.Context, d Delivery) error {
	outcome, err := s.post(ctx, d)
	s.report(ctx, d, outcome, err)
	return err
}

func (s *Sender) post(ctx context.Context, d Delivery) (Outcome, error) {
	where := Redact(d.URL)
	body, err := json.Marshal(d.Summary)
	if err != nil {
		return OutcomeInvalid, fmt.Errorf("%w: callback to %s: %v", asynq.SkipRetry, where, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return OutcomeInvalid, fmt.Errorf("%w: callback to %s: invalid URL: %v", asynq.SkipRetry, where, unwrapURLError(err))
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
	resp, err := s.client().Do(req)
	if err != nil {
		// The url.Error's message repeats the URL, userinfo and query
		// included: keep only its cause.
		return classify(ctx, err), fmt.Errorf("callback to %s: %w", where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return OutcomeRedirect, fmt.Errorf("callback to %s: the receiver redirected (HTTP %d) %s; redirects are not followed, "+
			"so give the final address as the callback URL", where, resp.StatusCode, redirectTarget(resp))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return OutcomeHTTPStatus, fmt.Errorf("callback to %s: HTTP %d", where, resp.StatusCode)
	}
	return OutcomeDelivered, nil
}

// client is the Sender's client, or a default one, with redirects turned
// off. It is a copy, so the caller's client keeps its own policy.
func (s *Sender) client() *http.Client {
	c := http.Client{Timeout: DefaultTimeout}
	if s.Client != nil {
		c = *s.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// report logs a failed attempt and passes every outcome to OnResult.
func (s *Sender) report(ctx context.Context, d Delivery, o Outcome, err error) {
	if s.OnResult != nil {
		s.OnResult(o)
	}
	if o == OutcomeDelivered {
		return
	}
	attempt := 1
	retried, hasRetried := asynq.GetRetryCount(ctx)
	if hasRetried {
		attempt = retried + 1
	}
	maxRetry, hasMax := asynq.GetMaxRetry(ctx)
	level, msg := slog.LevelWarn, "callback delivery failed; it is retried with backoff"
	switch {
	case o == OutcomeCanceled:
		level, msg = slog.LevelInfo, "callback delivery interrupted by shutdown; it is retried"
	case errors.Is(err, asynq.SkipRetry) || hasRetried && hasMax && retried >= maxRetry:
		level, msg = slog.LevelError, "callback delivery failed for the last time; the task is archived"
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Log(ctx, level, msg, "batch", d.Summary.Batch, "url", Redact(d.URL), "attempt", attempt,
		"reason", string(o), "error", err)
}

// classify names why a request got no answer.
func classify(ctx context.Context, err error) Outcome {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return OutcomeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return OutcomeTimeout
	}
	return OutcomeConnection
}

// redirectTarget says where a 3xx answer points, by host only: its path and
// query may hold another party's tokens.
func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	switch {
	case errors.Is(err, http.ErrNoLocation):
		return "without a Location"
	case err != nil:
		return "to an unparsable Location"
	}
	return "to host " + loc.Host
}

// unwrapURLError returns the cause of a *url.Error, whose own message
// repeats the whole URL.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
