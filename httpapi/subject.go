package httpapi

// This file is the subject form of POST /v1/erasure-requests: a data
// subject (an OAuth app profile, an end user's session, bots) instead of
// ids, erased as the erase-subject command does (package subject).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/coze-eraser/coze-eraser/coze"
	"github.com/coze-eraser/coze-eraser/discovery"
	"github.com/coze-eraser/coze-eraser/enqueue"
	"github.com/coze-eraser/coze-eraser/ledger"
	"github.com/coze-eraser/coze-eraser/subject"
	"github.com/coze-eraser/coze-eraser/tasks"
)

// SubjectRequest is the subject of a request that names a data subject
// instead of ids: what the erase-subject command takes. The server lists
// the session's conversations on each bot and connector, as that session,
// and queues their deletion as a verified batch.
type SubjectRequest struct {
	// Profile is the OAuth JWT app profile the session belongs to.
	Profile string `json:"profile"`
	// Session is the end user's session name (JWT session_name). It is
	// personal data: no answer, log line or error repeats it, and the
	// request's idempotency record keeps only a keyed hash of the body.
	Session string `json:"session"`
	// BotIDs are the bots to erase the subject's conversations on.
	BotIDs []string `json:"bot_ids"`
	// ConnectorIDs are the channels to list on each bot (default
	// coze.ConnectorAPI).
	ConnectorIDs []string `json:"connector_ids,omitempty"`
}

// UnmarshalJSON reads the subject as strictly as the rest of the body
// (no unknown fields), and names a field at fault with its full path,
// "subject.bot_ids", which the decoder of the outer object cannot.
func (s *SubjectRequest) UnmarshalJSON(b []byte) error {
	type plain SubjectRequest // without this method
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = "subject." + strings.Trim(name, `"`)
			return &fieldError{code: codeUnknownField, field: name, err: fmt.Errorf("unknown field %.72q: see /openapi.json for the fields", name)}
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			field := strings.TrimSuffix("subject."+typeErr.Field, ".")
			return &fieldError{code: codeInvalidField, field: field,
				err: fmt.Errorf("field %s: want %s, not a JSON %s", field, typeErr.Type, typeErr.Value)}
		}
		return err
	}
	*s = SubjectRequest(p)
	return nil
}

// fieldError is a decoding error that knows its code and field.
type fieldError struct {
	code, field string
	err         error
}

func (e *fieldError) Error() string { return e.err.Error() }

// Subjects gives the server what lists as a profile's end-user sessions.
// Without it (Config.Subjects nil) subject requests are refused with 501.
type Subjects interface {
	// Walker returns a walker whose lister acts as session of profile,
	// drawing on the profile's rate budget, and release, which frees what
	// the walker holds (its budget) once the request is done. An error
	// about the profile (not a profile of the server, a static token with
	// no sessions) is a *ProfileError, answered 400; any other is
	// answered 500. No error may name the session.
	Walker(profile, session string) (w *discovery.Walker, release func(), err error)
}

// SubjectsFunc is a function that is a [Subjects].
type SubjectsFunc func(profile, session string) (*discovery.Walker, func(), error)

// Walker calls f.
func (f SubjectsFunc) Walker(profile, session string) (*discovery.Walker, func(), error) {
	return f(profile, session)
}

// ProfileError is a profile a subject request cannot list as: the client
// named the wrong one. Reason says why, and never names a session.
type ProfileError struct {
	Profile string
	Reason  string
}

func (e *ProfileError) Error() string {
	return fmt.Sprintf("profile %s: %s", e.Profile, e.Reason)
}

// Discovery is what the listing of a subject request found, in the answer
// of the POST that listed; a replay does not list, and has none.
type Discovery struct {
	// Found counts the conversations listed; Enqueued those that joined
	// the request, Duplicate those it held already.
	Found     int `json:"found"`
	Enqueued  int `json:"enqueued"`
	Duplicate int `json:"duplicate"`
	// Listings counts the bot × connector walks recorded in the request.
	Listings int `json:"listings"`
	// Incomplete is true when a listing could not finish: what was found
	// is queued, and the request's verification lists every bot again once
	// those deletions are done.
	Incomplete bool `json:"incomplete"`
}

// checkSubject checks a subject's fields; it returns the error's code and
// the field at fault ("subject.bot_ids[2]"). No message repeats the
// session.
func checkSubject(s *SubjectRequest) (code, field string, err error) {
	switch {
	case s.Profile == "":
		return codeMissingField, "subject.profile", errors.New("subject.profile is required: the OAuth JWT app profile the session belongs to")
	case s.Session == "":
		return codeMissingField, "subject.session", errors.New("subject.session is required: the end user's session name")
	case s.BotIDs == nil:
		return codeMissingField, "subject.bot_ids", errors.New("subject.bot_ids is required: the bots to erase the subject's conversations on")
	}
	if err := tasks.ValidateProfile(s.Profile); err != nil {
		return codeInvalidField, "subject.profile", fmt.Errorf("subject.profile: %w", err)
	}
	if err := tasks.ValidateSession(s.Session); err != nil {
		return codeInvalidField, "subject.session", fmt.Errorf("subject.session: %w", err)
	}
	if len(s.BotIDs) == 0 || len(s.BotIDs) > subject.MaxTargets {
		return codeInvalidField, "subject.bot_ids", fmt.Errorf("subject.bot_ids has %d: give 1 to %d bots", len(s.BotIDs), subject.MaxTargets)
	}
	for i, bot := range s.BotIDs {
		if err := coze.ValidateBotID(bot); err != nil {
			f := fmt.Sprintf("subject.bot_ids[%d]", i)
			return codeInvalidField, f, fmt.Errorf("%s: %s", f, strings.TrimPrefix(err.Error(), coze.ErrBadQuery.Error()+": "))
		}
	}
	for i, c := range s.ConnectorIDs {
		if err := coze.ValidateConnectorID(c); err != nil {
			f := fmt.Sprintf("subject.connector_ids[%d]", i)
			return codeInvalidField, f, fmt.Errorf("%s: %s", f, strings.TrimPrefix(err.Error(), coze.ErrBadQuery.Error()+": "))
		}
	}
	bots, connectors := distinct(s.BotIDs), max(distinct(s.ConnectorIDs), 1)
	if bots*connectors > subject.MaxTargets {
		return codeInvalidField, "subject.bot_ids", fmt.Errorf("subject: %d bots × %d connectors: at most %d listings per request; split the bots into several requests",
			bots, connectors, subject.MaxTargets)
	}
	return "", "", nil
}

func distinct(s []string) int {
	return len(slices.Compact(slices.Sorted(slices.Values(s))))
}

// createSubject answers a POST whose body names a subject: it lists the
// session's conversations on each bot, as the session, and queues their
// deletion as a verified batch named by the request id. opts are the
// request's checked options (batch, queue, due time, note, callback).
func (s *Server) createSubject(w http.ResponseWriter, r *http.Request, req CreateRequest, opts []enqueue.Option) {
	if s.cfg.Subjects == nil {
		writeError(w, http.StatusNotImplemented, codeSubjectsUnavailable, "subject",
			"this server cannot list as end users' sessions: start serve (or the worker's --api-addr) with --profiles naming "+
				"the OAuth JWT app profile, and COZE_ERASER_SESSION_KEY_FILE; or send the conversation ids")
		return
	}
	if code, field, err := checkSubject(req.Subject); err != nil {
		writeError(w, http.StatusBadRequest, code, field, err.Error())
		return
	}
	sub := req.Subject
	// The walker comes before the claim: a profile the server cannot list
	// as leaves no record of the request, and the client can correct it.
	walker, release, err := s.cfg.Subjects.Walker(sub.Profile, sub.Session)
	if err != nil {
		var pe *ProfileError
		if errors.As(err, &pe) {
			writeError(w, http.StatusBadRequest, codeInvalidField, "subject.profile", pe.Error())
			return
		}
		s.internal(w, "preparing the listing", err)
		return
	}
	defer release()
	ctx := r.Context()
	// The body holds a session name, personal data: the record keeps its
	// keyed hash, which only the session key can link to a person.
	existing, ok := s.claimed(w, ctx, req.RequestID, ledger.SessionHash(s.cfg.SessionKey, string(canonical(req))))
	switch {
	case !ok:
		return
	case existing == claimSame:
		// A replay lists nothing again: the batch's verification lists
		// every bot once its deletions are done. Only a first try that
		// died before it opened the batch is run again.
		st, found, err := s.requestStatus(ctx, req.RequestID)
		if err != nil {
			s.internal(w, "reading the request", err)
			return
		}
		if found {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	eraser := &subject.Eraser{Enqueue: s.enqueue, Ledger: s.cfg.Ledger, Walker: walker, Now: s.cfg.Now}
	res, err := eraser.Erase(ctx, subject.Request{Profile: sub.Profile, Session: sub.Session, BotIDs: sub.BotIDs,
		ConnectorIDs: sub.ConnectorIDs, Batch: req.RequestID}, opts...)
	incomplete := errors.Is(err, subject.ErrIncomplete)
	switch {
	case errors.Is(err, ledger.ErrBatchConflict):
		// A batch of this name was made outside the API, as another
		// identity: nothing was added to it, and the claim is undone so
		// that the request id stays free.
		if existing == claimNew {
			if delErr := s.cfg.Redis.Del(ctx, s.keys.Request(req.RequestID)).Err(); delErr != nil {
				s.cfg.Logger.Error("api: undoing a refused request", "error", delErr)
			}
		}
		writeError(w, http.StatusConflict, codeConflict, "request_id", err.Error())
		return
	case err != nil && !incomplete:
		s.internal(w, "listing the subject's conversations", err)
		return
	}
	if incomplete {
		s.cfg.Logger.Warn("api: a subject's discovery could not finish; its verification lists again",
			"request", req.RequestID, "profile", sub.Profile, "error", err)
	}
	st, found, err := s.requestStatus(ctx, req.RequestID)
	if err != nil || !found {
		s.internal(w, "reading the request back", errors.Join(err, errors.New("not found")))
		return
	}
	st.Discovery = &Discovery{Found: res.Found, Enqueued: res.Enqueued, Duplicate: res.Duplicate, Listings: len(res.Listings), Incomplete: incomplete}
	code := http.StatusCreated
	if existing == claimSame {
		code = http.StatusOK
	}
	writeJSON(w, code, st)
}
