// Package cozetest is a fake Coze OpenAPI for tests, benchmarks and demos. It
// answers DELETE /v1/conversations/{id} and GET /v1/conversations (the list,
// see list.go) as NOTES.md says the real API does, and misbehaves on request: per-id scripted answers, random faults by rate,
// latency, a server-side rate limit, an auth outage. It also serves the
// OAuth JWT token endpoint and knows who created each conversation (see
// oauth.go): only the creator may delete it.
//
// It records what it was asked (method, path, token, the answer it chose) and
// what it did (which ids it deleted, with the log id of the deleting call), so
// a test can hold the system's own records against the fake's.
package cozetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Fault is a misbehaviour the fake can inject, at random or by script.
type Fault string

// The faults. Each is what the real API or a gateway in front of it is seen
// or expected to do.
const (
	// RateLimited: HTTP 429 from a gateway, plain body, no Retry-After.
	RateLimited Fault = "429"
	// RateLimitedRetryAfter: HTTP 429 with Retry-After and a JSON 4020 body.
	RateLimitedRetryAfter Fault = "429-retry-after"
	// BadGateway: HTTP 502 with an HTML body.
	BadGateway Fault = "502"
	// InternalError: HTTP 200, code 5000.
	InternalError Fault = "5000"
	// SystemLimit: HTTP 200, code 4009.
	SystemLimit Fault = "4009"
	// NotFound: HTTP 200, code 4002, without deleting anything (as for an id
	// of another account).
	NotFound Fault = "4002"
	// AuthInvalid: HTTP 200, code 4100.
	AuthInvalid Fault = "4100"
	// BadParameter: HTTP 200, code 4000.
	BadParameter Fault = "4000"
	// ConnReset: the connection is reset before anything is deleted.
	ConnReset Fault = "reset"
	// LostAnswer: the conversation is deleted, then the connection is reset,
	// so the caller never learns it succeeded.
	LostAnswer Fault = "lost"
	// Slow: the answer comes after the slow delay (see WithSlowDelay), past a
	// sensible client timeout; nothing is deleted if the client gave up.
	Slow Fault = "slow"
)

// Faults lists every fault, in the order random faults are drawn.
var Faults = []Fault{RateLimited, RateLimitedRetryAfter, BadGateway, InternalError, SystemLimit,
	NotFound, AuthInvalid, BadParameter, ConnReset, LostAnswer, Slow}

// Answer labels that are not faults, as they appear in [Call.Answer].
const (
	AnswerDeleted     = "deleted"      // deleted now
	AnswerGone        = "gone"         // already deleted earlier: 4002
	AnswerLimited     = "limit"        // over the server-side rate limit: 429
	AnswerUnauth      = "unauthorized" // wrong token or auth outage: 4100
	AnswerInvalidPath = "invalid"      // not a conversation id, or a bad list parameter: 4000
	AnswerNotCreator  = "not-creator"  // the caller did not create it: NotCreatorCode
	AnswerRefused     = "refused"      // refused by RefuseDelete, not deleted: 4002
	AnswerListed      = "listed"       // a list call answered with a page
)

// Call is one request the fake received and what it answered.
type Call struct {
	Seq    int64
	Method string
	Path   string
	ID     string
	// Token is the bearer token the request carried.
	Token string
	// Query is the raw query string of a list call (Method GET, Path
	// [ListPath], ID empty); empty for a DELETE.
	Query string
	// Identity is who Token acts as; zero when the call was refused before
	// or at the token check (rate limit, 4100).
	Identity Identity
	// Answer is a [Fault] or one of the Answer* labels.
	Answer string
	// Deleted is true when this call deleted the conversation.
	Deleted bool
	LogID   string
	At      time.Time
}

// Deletion is the fake's record of a conversation it deleted.
type Deletion struct {
	// LogID is the log id of the call that deleted it, whether or not the
	// caller received the answer.
	LogID string
	At    time.Time
	// AnswerLost is true when the deleting call's answer never reached the
	// caller (LostAnswer).
	AnswerLost bool
}

// Fake is the fake API as an http.Handler; [NewServer] serves one on a
// loopback port. Its setters may be called while it serves.
type Fake struct {
	seq      atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64

	mu         sync.Mutex
	rng        *rand.Rand
	faults     map[Fault]float64
	scripts    map[string][]Fault
	forever    map[string]Fault
	deleted    map[string]Deletion
	calls      []Call
	record     bool
	counts     map[string]int64
	token      string
	authDown   bool
	latency    time.Duration
	slowDelay  time.Duration
	retryAfter int
	limiter    *rate.Limiter
	oauth      oauthState
	list       listState
}

// Option configures a [Fake] at construction.
type Option func(*Fake)

// WithSeed makes random faults repeatable for a serial caller.
func WithSeed(seed uint64) Option {
	return func(f *Fake) { f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// WithFaults sets random fault rates; see [Fake.SetFaults].
func WithFaults(rates map[Fault]float64) Option { return func(f *Fake) { f.SetFaults(rates) } }

// WithLatency delays every answer.
func WithLatency(d time.Duration) Option { return func(f *Fake) { f.latency = d } }

// WithRateLimit answers 429 above perSecond requests a second.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(f *Fake) { f.SetRateLimit(perSecond, burst) }
}

// WithToken accepts only this bearer token; any other answers 4100. Without
// it any non-empty token is accepted. Access tokens the token endpoint
// ([TokenPath]) issued are judged apart; a static token acts as
// [StaticTokenApp].
func WithToken(token string) Option { return func(f *Fake) { f.token = token } }

// WithSlowDelay sets how long a [Slow] answer takes (default 5 s).
func WithSlowDelay(d time.Duration) Option { return func(f *Fake) { f.slowDelay = d } }

// WithRetryAfter sets the Retry-After seconds of [RateLimitedRetryAfter]
// (default 1).
func WithRetryAfter(seconds int) Option { return func(f *Fake) { f.retryAfter = seconds } }

// WithoutCallLog keeps counts but not the list of calls, for long
// benchmarks where the list would grow without bound.
func WithoutCallLog() Option { return func(f *Fake) { f.record = false } }

// NewFake returns a fake API.
func NewFake(opts ...Option) *Fake {
	f := &Fake{
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		scripts:    map[string][]Fault{},
		forever:    map[string]Fault{},
		deleted:    map[string]Deletion{},
		counts:     map[string]int64{},
		record:     true,
		slowDelay:  5 * time.Second,
		retryAfter: 1,
		oauth:      newOAuthState(),
		list:       newListState(),
	}
	for _, opt := range opts {
		opt(f)
	}
	return f
}

// SetFaults sets the probability of each random fault per call; the rest of
// the calls are answered normally. The rates must add up to at most 1.
func (f *Fake) SetFaults(rates map[Fault]float64) {
	var sum float64
	for _, r := range rates {
		sum += r
	}
	if sum > 1 {
		panic(fmt.Sprintf("cozetest: fault rates add up to %.3f > 1", sum))
	}
	f.mu.Lock()
	f.faults = rates
	f.mu.Unlock()
}

// SetRateLimit answers 429 above perSecond requests a second; 0 removes the
// limit.
func (f *Fake) SetRateLimit(perSecond float64, burst int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if perSecond <= 0 {
		f.limiter = nil
		return
	}
	f.limiter = rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
}

// SetAuthDown makes every call answer 4100 while down is true, as when the
// account's token was revoked.
func (f *Fake) SetAuthDown(down bool) {
	f.mu.Lock()
	f.authDown = down
	f.mu.Unlock()
}

// SetToken changes the accepted token; see [WithToken].
func (f *Fake) SetToken(token string) {
	f.mu.Lock()
	f.token = token
	f.mu.Unlock()
}

// SetLatency changes the delay of every answer.
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// Script queues answers for id: its next calls get these faults in order,
// before random faults and normal answers resume.
func (f *Fake) Script(id string, faults ...Fault) {
	f.mu.Lock()
	f.scripts[id] = append(f.scripts[id], faults...)
	f.mu.Unlock()
}

// ScriptForever makes every call for id answer with fault, after any
// scripted answers. An empty fault ends it: id is answered normally again.
func (f *Fake) ScriptForever(id string, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == "" {
		delete(f.forever, id)
		return
	}
	f.forever[id] = fault
}

// Deleted reports whether the fake deleted id, and how.
func (f *Fake) Deleted(id string) (Deletion, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.deleted[id]
	return d, ok
}

// Deletions returns every deletion, by conversation id.
func (f *Fake) Deletions() map[string]Deletion {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]Deletion, len(f.deleted))
	for id, d := range f.deleted {
		out[id] = d
	}
	return out
}

// Calls returns the calls received so far, in order of arrival.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Counts returns how many calls got each answer, by [Call.Answer] label;
// the key "total" counts every call.
func (f *Fake) Counts() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int64, len(f.counts))
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

// MaxInFlight returns the most calls the fake was serving at once.
func (f *Fake) MaxInFlight() int64 { return f.maxIn.Load() }

// ServeHTTP answers one API call.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == TokenPath { // not a conversation call: not counted or recorded
		f.serveToken(w, r)
		return
	}
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxIn.Load()
		if n <= m || f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}

	if r.URL.Path == ListPath {
		f.serveList(w, r)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/conversations/")
	if !ok || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	call, ok := f.begin(w, r, http.MethodDelete)
	if !ok {
		return
	}
	call.ID = id
	call.Answer = f.decide(&call)
	f.answer(w, r, &call)
}

// decide picks the answer for a call and applies its effect on the fake's
// state (a deletion), under the lock, so concurrent calls for one id see a
// consistent order.
func (f *Fake) decide(call *Call) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := f.choose(call)
	if answer == AnswerDeleted || answer == string(LostAnswer) {
		if _, gone := f.deleted[call.ID]; gone {
			answer = AnswerGone
		} else {
			call.Deleted = true
			f.deleted[call.ID] = Deletion{LogID: call.LogID, At: call.At, AnswerLost: answer == string(LostAnswer)}
			f.changedLocked()
		}
	}
	f.recordLocked(call, answer)
	return answer
}

// recordLocked counts a call's answer and logs the call. Called with f.mu
// held.
func (f *Fake) recordLocked(call *Call, answer string) {
	f.counts["total"]++
	f.counts[answer]++
	call.Answer = answer // before the copy below: recorded calls carry their answer
	if f.record {
		f.calls = append(f.calls, *call)
	}
}

func (f *Fake) choose(call *Call) string {
	if f.limiter != nil && !f.limiter.Allow() {
		return AnswerLimited
	}
	who, ok := f.identify(call.Token)
	if f.authDown || !ok {
		return AnswerUnauth
	}
	call.Identity = who
	if !validID(call.ID) {
		return AnswerInvalidPath
	}
	// Before scripts: a scripted LostAnswer must not delete another's
	// conversation.
	if !f.mayDelete(call.ID, who) {
		return AnswerNotCreator
	}
	if f.list.refused[call.ID] { // likewise: a refused id is never deleted
		return AnswerRefused
	}
	if script := f.scripts[call.ID]; len(script) > 0 {
		f.scripts[call.ID] = script[1:]
		return string(script[0])
	}
	if fault, ok := f.forever[call.ID]; ok {
		return string(fault)
	}
	if _, gone := f.deleted[call.ID]; gone {
		return AnswerGone
	}
	if fault := f.randomFault(); fault != "" {
		return string(fault)
	}
	return AnswerDeleted
}

// randomFault draws a fault at the rates SetFaults set; "" means none.
// Called with f.mu held.
func (f *Fake) randomFault() Fault {
	u := f.rng.Float64()
	for _, fault := range Faults {
		if u -= f.faults[fault]; u < 0 {
			return fault
		}
	}
	return ""
}

func (f *Fake) answer(w http.ResponseWriter, r *http.Request, call *Call) {
	w.Header().Set("X-Tt-Logid", call.LogID)
	switch call.Answer {
	case AnswerDeleted:
		writeJSON(w, http.StatusOK, 0, "", call.LogID)
	case AnswerGone, AnswerRefused, string(NotFound):
		writeJSON(w, http.StatusOK, 4002, "conversation not found", call.LogID)
	case AnswerNotCreator:
		writeJSON(w, http.StatusOK, NotCreatorCode, "resource not found", call.LogID)
	case AnswerLimited:
		writeJSON(w, http.StatusTooManyRequests, 4020, "RPM limit exceeded", call.LogID)
	case AnswerUnauth, string(AuthInvalid):
		writeJSON(w, http.StatusOK, 4100, "authentication is invalid", call.LogID)
	case AnswerInvalidPath, string(BadParameter):
		writeJSON(w, http.StatusOK, 4000, "invalid parameter: conversation_id", call.LogID)
	case string(RateLimited):
		w.Header().Del("X-Tt-Logid")
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
	case string(RateLimitedRetryAfter):
		f.mu.Lock()
		secs := f.retryAfter
		f.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, 4020, "RPM limit exceeded", call.LogID)
	case string(BadGateway):
		w.Header().Del("X-Tt-Logid")
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n")
	case string(InternalError):
		writeJSON(w, http.StatusOK, 5000, "internal server error", call.LogID)
	case string(SystemLimit):
		writeJSON(w, http.StatusOK, 4009, "system request limit reached, retry later", call.LogID)
	case string(ConnReset), string(LostAnswer):
		resetConnection(w)
	case string(Slow):
		f.mu.Lock()
		d := f.slowDelay
		f.mu.Unlock()
		if sleepCtx(r, d) {
			writeJSON(w, http.StatusOK, 5000, "slow answer", call.LogID)
		}
	default:
		writeJSON(w, http.StatusOK, 5000, "cozetest: unknown scripted answer "+call.Answer, call.LogID)
	}
}

func writeJSON(w http.ResponseWriter, status int, code int64, msg, logID string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"msg":%q,"detail":{"logid":%q}}`, code, msg, logID) //nolint:gosec // a JSON answer (not HTML) of the fake's own log id and fixed messages, each quoted
}

// resetConnection closes the connection with SO_LINGER 0, so the client
// sees a TCP reset rather than an orderly close.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("cozetest: the server does not support hijacking")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// begin answers 405 to a call of another method than method, waits the
// fake's latency, and returns the call's record with its sequence number,
// token, log id and time; false means the call is over (refused, or its
// client gone).
func (f *Fake) begin(w http.ResponseWriter, r *http.Request, method string) (Call, bool) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return Call{}, false
	}
	f.mu.Lock()
	latency := f.latency
	f.mu.Unlock()
	if latency > 0 && !sleepCtx(r, latency) {
		return Call{}, false
	}
	now := time.Now()
	seq := f.seq.Add(1)
	return Call{Seq: seq, Method: r.Method, Path: r.URL.Path, Token: bearer(r), LogID: newLogID(now, seq), At: now}, true
}

// sleepCtx waits for d or until the client goes away; it reports whether the
// full delay passed.
func sleepCtx(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

func validID(id string) bool {
	if id == "" || len(id) > 19 || id[0] == '0' {
		return false
	}
	_, err := strconv.ParseInt(id, 10, 64)
	return err == nil && !strings.ContainsAny(id, "+-")
}

// newLogID makes a log id shaped like Coze's: a timestamp to the
// millisecond and 15 upper-case hex digits, 32 characters in all.
func newLogID(now time.Time, seq int64) string {
	return fmt.Sprintf("%s%03d%015X", now.UTC().Format("20060102150405"), now.Nanosecond()/1e6, uint64(seq)&0xFFFFFFFFFFFFFFF) //nolint:gosec // a counter's low 60 bits, any sign
}
