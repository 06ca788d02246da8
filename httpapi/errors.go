package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The stable codes of the API's errors (ErrorBody.Error.Code).
const (
	codeUnauthenticated = "unauthenticated"
	codeForbidden       = "forbidden"
	codeNotFound        = "not_found"
	codeConflict        = "conflict"
	codeBodyTooLarge    = "body_too_large"
	codeTooManyIDs      = "too_many_ids"
	codeInvalidJSON     = "invalid_json"
	codeUnknownField    = "unknown_field"
	codeMissingField    = "missing_field"
	codeInvalidField    = "invalid_field"
	codeInternal        = "internal"
	// codeSubjectsUnavailable is a subject request to a server without
	// Config.Subjects (501).
	codeSubjectsUnavailable = "subjects_unavailable"
)

// ErrorBody is every error answer: a stable code, a message for a person,
// and the request field at fault when there is one.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error's detail.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, field, message string) {
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message, Field: field}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // JSON, not HTML: "<secret>" reads as written
	_ = enc.Encode(v)        // the client went away: nothing to do
}

// decodeStrict reads one JSON object into v, refusing unknown fields and
// trailing data. It returns the error's code and the field at fault.
func decodeStrict(body []byte, v any) (code, field string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return fe.code, fe.field, fe.err
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			return codeUnknownField, name, fmt.Errorf("unknown field %.64q: see /openapi.json for the fields", name)
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return codeInvalidField, typeErr.Field, fmt.Errorf("field %s: want %s, not a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return codeInvalidJSON, "", fmt.Errorf("the body is not a JSON object of an erasure request: %w", err)
	}
	if dec.More() {
		return codeInvalidJSON, "", errors.New("the body has more than one JSON value: send one object")
	}
	return "", "", nil
}
