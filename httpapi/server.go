package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/internal/keyspace"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/report"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// DefaultMaxBody bounds a request body: about 400,000 ids. Larger
// requests are refused with 413, and a hint to split them.
const DefaultMaxBody = 8 << 20

// MaxIDs bounds the ids of one erasure request: more (short ids fit many
// more in the body) are refused with 413 too_many_ids, and a hint to split
// them. It keeps one request within what one enqueue call and one answer
// should hold.
const MaxIDs = 400_000

// Config configures a [Server].
type Config struct {
	// Redis holds the queues and the ledger; Ledger is the ledger in it
	// (default ledger.New(Redis)).
	Redis  redis.UniversalClient
	Ledger *ledger.Ledger
	// Keys admit the requests; required.
	Keys *Keys
	// MaxBody bounds a request body (default [DefaultMaxBody]).
	MaxBody int64
	// Logger receives one line per refused or failed request (default
	// slog.Default()). Secrets and ids never reach it.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Subjects lists as end users' sessions, for requests that name a
	// data subject instead of ids; nil refuses them with 501
	// subjects_unavailable.
	Subjects Subjects
	// SessionKey keys the hash of a subject request's body (it holds a
	// session name) in the request's idempotency record: the workers'
	// COZE_ERASER_SESSION_KEY_FILE key (ledger.SessionHash). Required with
	// Subjects.
	SessionKey []byte
}

// Server serves the HTTP API for erasure requests.
type Server struct {
	cfg     Config
	enqueue *enqueue.Client
	keys    keyspace.Keyspace
}

// New returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Redis == nil || cfg.Keys == nil {
		return nil, errors.New("httpapi: Config.Redis and Config.Keys are required")
	}
	if cfg.Subjects != nil && len(cfg.SessionKey) == 0 {
		return nil, errors.New("httpapi: Config.SessionKey is required with Config.Subjects: a subject request's record keeps a keyed hash")
	}
	if cfg.Ledger == nil {
		cfg.Ledger = ledger.New(cfg.Redis)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{cfg: cfg, enqueue: enqueue.NewClient(cfg.Redis, enqueue.WithLedger(cfg.Ledger), enqueue.WithClock(cfg.Now)),
		keys: keyspace.New(cfg.Ledger.Prefix())}, nil
}

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI is the API's OpenAPI 3 document, as /openapi.json serves it.
func OpenAPI() []byte { return slices.Clone(openAPIDocument) }

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})
	mux.Handle("POST /v1/erasure-requests", s.with(ScopeWrite, s.create))
	mux.Handle("GET /v1/erasure-requests/{id}", s.with(ScopeRead, s.status))
	mux.Handle("GET /v1/erasure-requests/{id}/report", s.with(ScopeRead, s.report))
	mux.Handle("GET /v1/failures", s.with(ScopeRead, s.failures))
	mux.Handle("POST /v1/erasure-requests/{id}/cancel", s.with(ScopeWrite, s.cancel))
	mux.Handle("POST /v1/erasure-requests/{id}/extend", s.with(ScopeWrite, s.extend))
	mux.Handle("POST /v1/erasure-requests/{id}/retry-failed", s.with(ScopeWrite, s.retryFailed))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "", fmt.Sprintf("no route %s %s: see /openapi.json", r.Method, report.Printable(r.URL.Path)))
	})
	return mux
}

// with admits requests whose key has scope, and answers the others 401
// or 403 with no data.
func (s *Server) with(scope Scope, h func(http.ResponseWriter, *http.Request, Key)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := s.cfg.Keys.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="coze-eraser"`)
			writeError(w, http.StatusUnauthorized, codeUnauthenticated, "", err.Error())
			return
		}
		if !k.Can(scope) {
			writeError(w, http.StatusForbidden, codeForbidden, "", fmt.Sprintf("key %s has no %s scope", k.Name, scope))
			return
		}
		h(w, r, k)
	})
}

// CreateRequest is the body of POST /v1/erasure-requests.
type CreateRequest struct {
	// RequestID is the client's id of the request: the same id and body
	// again returns the existing request; the same id with another body
	// is a conflict. It names the batch, so it follows the batch name
	// rule (tasks.ValidateBatch).
	RequestID string `json:"request_id"`
	// IDs are the conversation ids to erase; or Subject names a data
	// subject whose conversations the server lists. One of the two.
	IDs         []string `json:"ids"`
	DueAt       string   `json:"due_at,omitempty"`
	Note        string   `json:"note,omitempty"`
	CallbackURL string   `json:"callback_url,omitempty"`
	Queue       string   `json:"queue,omitempty"`
	// Subject is last and left out when nil, so that the canonical form of
	// an ids request (its idempotency hash) is what it was before subjects.
	Subject *SubjectRequest `json:"subject,omitempty"`
}

// Rejected is an id of a request that is not a conversation id.
type Rejected struct {
	Index  int    `json:"index"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// RequestStatus is an erasure request as the API shows it, shaped after
// OpenDSR's request status.
type RequestStatus struct {
	RequestID string `json:"request_id"`
	// SubjectRequestID is RequestID, under OpenDSR's name.
	SubjectRequestID string `json:"subject_request_id"`
	Batch            string `json:"batch"`
	// Status is pending, in_progress, completed or cancelled.
	Status string `json:"status"`
	// State is the batch's own state (open, overdue, verifying, complete,
	// empty, lost).
	State                  string     `json:"state"`
	ExpectedCompletionTime time.Time  `json:"expected_completion_time"`
	CompletedAt            *time.Time `json:"completed_at,omitempty"`
	StatusCallbackURLs     []string   `json:"status_callback_urls"`
	Note                   string     `json:"note"`
	Total                  int        `json:"total"`
	Deleted                int        `json:"deleted"`
	NotFound               int        `json:"not_found"`
	Failed                 int        `json:"failed"`
	Cancelled              int        `json:"cancelled"`
	Pending                int        `json:"pending"`
	Invalid                int        `json:"invalid"`
	Rejected               []Rejected `json:"rejected,omitempty"`
	// Discovery is set in the answer of the POST that listed a subject.
	Discovery *Discovery `json:"discovery,omitempty"`
}

// create answers POST /v1/erasure-requests.
func (s *Server) create(w http.ResponseWriter, r *http.Request, _ Key) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req CreateRequest
	if code, field, err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, code, field, err.Error())
		return
	}
	opts, field, err := s.options(req)
	if errors.Is(err, errTooManyIDs) {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooManyIDs, field, err.Error())
		return
	}
	if err != nil {
		code := codeInvalidField
		if field == "request_id" && req.RequestID == "" || field == "ids" && req.IDs == nil {
			code = codeMissingField
		}
		writeError(w, http.StatusBadRequest, code, field, err.Error())
		return
	}
	if req.Subject != nil {
		s.createSubject(w, r, req, opts)
		return
	}
	sum := sha256.Sum256(canonical(req))
	existing, ok := s.claimed(w, r.Context(), req.RequestID, hex.EncodeToString(sum[:]))
	if !ok {
		return
	}
	rejected, valid := rejectedIDs(req.IDs)
	input := req.IDs
	if existing == claimSame {
		// A replay runs the enqueue again with the valid ids: each is a
		// duplicate then, and a create that died half-way is finished. (The
		// invalid ones were counted by the first run.)
		input = valid
	}
	if _, err := s.enqueue.EnqueueAll(r.Context(), slices.Values(input), opts...); err != nil && !errors.Is(err, enqueue.ErrNoIDs) {
		s.internal(w, "queueing the ids", err)
		return
	}
	st, found, err := s.requestStatus(r.Context(), req.RequestID)
	if err != nil || !found {
		s.internal(w, "reading the request back", errors.Join(err, errors.New("not found")))
		return
	}
	st.Rejected = rejected
	code := http.StatusCreated
	if existing == claimSame {
		code = http.StatusOK
	}
	writeJSON(w, code, st)
}

// options turns a request into enqueue options, checked; field names the
// field at fault.
func (s *Server) options(req CreateRequest) (opts []enqueue.Option, field string, err error) {
	if req.RequestID == "" {
		return nil, "request_id", errors.New("request_id is required: the client's id of the request, which makes a replay safe")
	}
	if err := tasks.ValidateBatch(req.RequestID); err != nil {
		return nil, "request_id", err
	}
	switch {
	case req.IDs == nil && req.Subject == nil:
		return nil, "ids", errors.New("ids or subject is required: the conversation ids to erase, as strings, or the data subject whose conversations to list")
	case req.IDs != nil && req.Subject != nil:
		return nil, "subject", errors.New("ids and subject: give one of them, the ids to erase or the data subject, not both")
	case len(req.IDs) > MaxIDs:
		return nil, "ids", fmt.Errorf("%w: %d ids, at most %d per request: split them into requests of at most %d ids each (request ids such as dsr-4711.1, dsr-4711.2)",
			errTooManyIDs, len(req.IDs), MaxIDs, MaxIDs)
	}
	opts = []enqueue.Option{enqueue.Batch(req.RequestID)}
	if req.Queue != "" {
		opts = append(opts, enqueue.Queue(req.Queue))
	}
	if req.DueAt != "" {
		due, err := time.Parse(time.RFC3339, req.DueAt)
		if err != nil {
			return nil, "due_at", fmt.Errorf("due_at %.40q: not an RFC 3339 time such as 2027-01-03T00:00:00Z", req.DueAt)
		}
		opts = append(opts, enqueue.Due(due))
	}
	if req.Note != "" {
		opts = append(opts, enqueue.Note(req.Note))
	}
	if req.CallbackURL != "" {
		opts = append(opts, enqueue.CallbackURL(req.CallbackURL))
	}
	if err := enqueue.CheckOptions(s.cfg.Now(), opts...); err != nil {
		return nil, optionField(err), err
	}
	return opts, "", nil
}

// errTooManyIDs is wrapped by the error of a request of more than MaxIDs
// ids, answered 413.
var errTooManyIDs = errors.New("too many ids")

// optionField is the request field of an enqueue option's error.
func optionField(err error) string {
	var oe *enqueue.OptionError
	if errors.As(err, &oe) {
		switch oe.Option {
		case "Queue":
			return "queue"
		case "Due", "DueIn":
			return "due_at"
		case "Note":
			return "note"
		case "CallbackURL":
			return "callback_url"
		case "Batch":
			return "request_id"
		}
	}
	var be *enqueue.BoundsError
	if errors.As(err, &be) {
		return "due_at"
	}
	return ""
}

// The answers of claim.
const (
	claimNew   = 0 // the request id is new: this call creates it
	claimSame  = 1 // created before with the same body: a replay
	claimOther = 2 // created before with another body
)

// claimed claims request id for its body's hash as claim does, and
// answers the request itself (500, or 409 for another body) when the
// request may not go on.
func (s *Server) claimed(w http.ResponseWriter, ctx context.Context, id, bodyHash string) (int, bool) {
	existing, err := s.claim(ctx, id, bodyHash)
	switch {
	case err != nil:
		s.internal(w, "recording the request", err)
		return 0, false
	case existing == claimOther:
		writeError(w, http.StatusConflict, codeConflict, "request_id",
			fmt.Sprintf("request %s exists with another body: give a new request_id", id))
		return 0, false
	}
	return existing, true
}

// claim records request id with its body's hash, or says how it was
// recorded before.
func (s *Server) claim(ctx context.Context, id, bodyHash string) (int, error) {
	key := s.keys.Request(id)
	set, err := s.cfg.Redis.HSetNX(ctx, key, "body", bodyHash).Result()
	if err != nil {
		return 0, err
	}
	if set {
		err := s.cfg.Redis.HSet(ctx, key, "batch", id, "created", strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)).Err()
		if err == nil {
			err = s.cfg.Redis.Expire(ctx, key, ledger.DefaultTTL).Err()
		}
		return claimNew, err
	}
	have, err := s.cfg.Redis.HGet(ctx, key, "body").Result()
	if err != nil {
		return 0, err
	}
	if have == bodyHash {
		return claimSame, nil
	}
	return claimOther, nil
}

// canonical is the request as hashed for idempotency: its JSON as this
// server reads it, so that spacing and key order do not matter.
func canonical(req CreateRequest) []byte {
	b, _ := json.Marshal(req) // strings and a slice of strings: cannot fail
	return b
}

// status answers GET /v1/erasure-requests/{id}.
func (s *Server) status(w http.ResponseWriter, r *http.Request, _ Key) {
	id := r.PathValue("id")
	st, found, err := s.requestStatus(r.Context(), id)
	switch {
	case err != nil:
		s.internal(w, "reading the request", err)
	case !found:
		notFound(w, id)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// requestStatus reads request id's batch.
func (s *Server) requestStatus(ctx context.Context, id string) (RequestStatus, bool, error) {
	if tasks.ValidateBatch(id) != nil {
		return RequestStatus{}, false, nil
	}
	b, ok, err := s.cfg.Ledger.BatchOrLost(ctx, id)
	if err != nil || !ok {
		return RequestStatus{}, false, err
	}
	now := s.cfg.Now()
	st := RequestStatus{RequestID: id, SubjectRequestID: id, Batch: b.Name, State: string(b.State(now)),
		ExpectedCompletionTime: b.DueAt, StatusCallbackURLs: []string{}, Note: b.Note, Total: b.Total, Deleted: b.Deleted,
		NotFound: b.NotFound, Failed: b.Failed, Cancelled: b.Cancelled, Pending: b.Pending(), Invalid: b.Invalid}
	if b.CallbackURL != "" {
		st.StatusCallbackURLs = []string{b.CallbackURL}
	}
	switch {
	case b.Control == ledger.ControlCancelled:
		st.Status = "cancelled"
		if !b.CompletedAt.IsZero() {
			at := b.CompletedAt
			st.CompletedAt = &at
		}
	case b.State(now) == ledger.StateComplete || b.State(now) == ledger.StateEmpty:
		st.Status = "completed"
		at := b.CompletedAt
		st.CompletedAt = &at
	default:
		st.Status = "pending"
		if b.Finished() > 0 || b.Verification.State == ledger.VerificationPending && b.Pending() == 0 {
			st.Status = "in_progress"
		}
	}
	return st, true, nil
}

// exists reports whether request id exists, and answers 404 or 500 when
// it does not.
func (s *Server) exists(w http.ResponseWriter, r *http.Request, id string) bool {
	_, found, err := s.requestStatus(r.Context(), id)
	switch {
	case err != nil:
		s.internal(w, "reading the request", err)
	case !found:
		notFound(w, id)
	}
	return err == nil && found
}

// notFound answers 404 for request id.
func notFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, codeNotFound, "", fmt.Sprintf("no erasure request %s", report.Printable(truncate(id, 140))))
}

// report answers GET /v1/erasure-requests/{id}/report: the proof of
// erasure, CSV unless Accept asks for JSON lines.
func (s *Server) report(w http.ResponseWriter, r *http.Request, _ Key) {
	id := r.PathValue("id")
	if !s.exists(w, r, id) {
		return
	}
	format, contentType := "csv", "text/csv; charset=utf-8"
	if accepts(r, "application/x-ndjson") || accepts(r, "application/jsonl") {
		format, contentType = "jsonl", "application/x-ndjson"
	}
	// Written to a buffer first: an error half-way must not leave a
	// proof that looks whole.
	var buf bytes.Buffer
	if err := report.WriteProof(r.Context(), s.cfg.Ledger, id, format, &buf, s.cfg.Now()); err != nil {
		s.internal(w, "writing the report", err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = buf.WriteTo(w)
}

// failures answers GET /v1/failures[?request_id=ID]: the failure records,
// as JSON lines.
func (s *Server) failures(w http.ResponseWriter, r *http.Request, _ Key) {
	filter := ledger.Filter{Batch: r.URL.Query().Get("request_id")}
	if filter.Batch != "" && tasks.ValidateBatch(filter.Batch) != nil {
		writeError(w, http.StatusBadRequest, codeInvalidField, "request_id", "request_id: not a request id")
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := s.cfg.Ledger.Failures(r.Context(), filter, func(f ledger.Failure) error { return enc.Encode(f) }); err != nil {
		s.internal(w, "reading the failures", err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, _ = buf.WriteTo(w)
}

// ControlRequest is the body of the cancel and extend calls: why, and for
// extend the new due time.
type ControlRequest struct {
	Note  string `json:"note"`
	DueAt string `json:"due_at,omitempty"`
}

// controlBody reads an optional ControlRequest body.
func (s *Server) controlBody(w http.ResponseWriter, r *http.Request) (ControlRequest, bool) {
	var req ControlRequest
	body, ok := s.readBody(w, r)
	if !ok {
		return req, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, true
	}
	if code, field, err := decodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, code, field, err.Error())
		return req, false
	}
	return req, true
}

// cancel answers POST /v1/erasure-requests/{id}/cancel: its pending ids
// end cancelled; finished ones keep their outcome.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request, _ Key) {
	req, ok := s.controlBody(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if _, err := s.enqueue.Cancel(r.Context(), id, req.Note); err != nil {
		s.controlError(w, id, err)
		return
	}
	s.status(w, r, Key{})
}

// extend answers POST /v1/erasure-requests/{id}/extend: a later due time,
// with the reason kept in the request's history.
func (s *Server) extend(w http.ResponseWriter, r *http.Request, _ Key) {
	req, ok := s.controlBody(w, r)
	if !ok {
		return
	}
	due, err := time.Parse(time.RFC3339, req.DueAt)
	switch {
	case req.DueAt == "":
		writeError(w, http.StatusBadRequest, codeMissingField, "due_at", "due_at is required: the new due time (RFC 3339)")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codeInvalidField, "due_at", fmt.Sprintf("due_at %.40q: not an RFC 3339 time", req.DueAt))
		return
	case req.Note == "":
		writeError(w, http.StatusBadRequest, codeMissingField, "note", "note is required: the reason for the extension, kept in the history")
		return
	}
	id := r.PathValue("id")
	if _, err := s.enqueue.Extend(r.Context(), id, due, req.Note); err != nil {
		s.controlError(w, id, err)
		return
	}
	s.status(w, r, Key{})
}

// retryFailed answers POST /v1/erasure-requests/{id}/retry-failed: the
// request's failed ids get a new task.
func (s *Server) retryFailed(w http.ResponseWriter, r *http.Request, _ Key) {
	id := r.PathValue("id")
	if !s.exists(w, r, id) {
		return
	}
	if _, err := s.enqueue.RetryFailures(r.Context(), ledger.Filter{Batch: id, Outcome: ledger.Failed}, false); err != nil {
		s.controlError(w, id, err)
		return
	}
	s.status(w, r, Key{})
}

// controlError answers a refused control action.
func (s *Server) controlError(w http.ResponseWriter, id string, err error) {
	name := report.Printable(truncate(id, 140))
	switch {
	case errors.Is(err, ledger.ErrNoBatch):
		writeError(w, http.StatusNotFound, codeNotFound, "", fmt.Sprintf("no erasure request %s", name))
	case errors.Is(err, ledger.ErrBadExtension):
		writeError(w, http.StatusBadRequest, codeInvalidField, "due_at", err.Error())
	case errors.Is(err, ledger.ErrBatchComplete), errors.Is(err, ledger.ErrBatchCancelled), errors.Is(err, ledger.ErrBatchState):
		writeError(w, http.StatusConflict, codeConflict, "", err.Error())
	default:
		var oe *enqueue.OptionError
		if errors.As(err, &oe) {
			writeError(w, http.StatusBadRequest, codeInvalidField, "note", err.Error())
			return
		}
		s.internal(w, "changing the request", err)
	}
}

// readBody reads a body up to the limit; a longer one is answered 413.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeBodyTooLarge, "",
			fmt.Sprintf("the body is over %d bytes: split the ids into several requests of at most %d ids", s.cfg.MaxBody, MaxIDs))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, codeInvalidJSON, "", "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// internal answers 500 and logs why (never a secret: errors here come
// from Redis).
func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.cfg.Logger.Error("api: "+what, "error", err)
	writeError(w, http.StatusInternalServerError, codeInternal, "", what+" failed; trying again is safe")
}

func accepts(r *http.Request, mediaType string) bool {
	return bytes.Contains([]byte(r.Header.Get("Accept")), []byte(mediaType))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// rejectedIDs splits ids into the rejected, with their index and reason,
// and the valid.
func rejectedIDs(ids []string) (rejected []Rejected, valid []string) {
	for i, id := range ids {
		if err := tasks.ValidateID(id); err != nil {
			rejected = append(rejected, Rejected{Index: i, ID: report.Printable(truncate(id, 64)), Reason: reason(err)})
			continue
		}
		valid = append(valid, id)
	}
	return rejected, valid
}

// reason is an invalid id's reason, without the id (the answer lists it
// apart).
func reason(err error) string {
	var inv *tasks.InvalidIDError
	if errors.As(err, &inv) {
		return inv.Reason
	}
	return err.Error()
}
