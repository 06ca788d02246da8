package coze

import (
	"net/http"
	"strconv"
)

// Class is what an answer of the delete endpoint means for the caller.
type Class string

// The classes of an answer. NOTES.md in the API facts has the table this
// follows; docs/outcomes.md repeats it for operators.
const (
	// ClassDeleted: the conversation was deleted (code 0).
	ClassDeleted Class = "deleted"
	// ClassNotFound: the conversation does not exist or is not this account's
	// (4002, 4200); also what a second delete of the same id answers.
	ClassNotFound Class = "not_found"
	// ClassAuth: the token is invalid, expired or lacks the permission
	// (4100, 4101, HTTP 401 and 403). Retrying one task will not help; the
	// caller should stop calling until the token is fixed.
	ClassAuth Class = "auth"
	// ClassRateLimited: slow down (4009, 4020, HTTP 429).
	ClassRateLimited Class = "rate_limited"
	// ClassTransient: try again later (4013, 4102, 5000, HTTP 408 and 5xx,
	// network errors, a truncated body).
	ClassTransient Class = "transient"
	// ClassPermanent: this request will never succeed as it is (4000, the
	// balance codes, other 4xxx codes).
	ClassPermanent Class = "permanent"
	// ClassUnknown: an answer the table does not explain (a code outside it,
	// a body that is not JSON on an unexpected status). Retried with backoff
	// like a transient error, and recorded with its code and message.
	ClassUnknown Class = "unknown"
)

// Classes lists every class, for metrics and documentation.
var Classes = []Class{ClassDeleted, ClassNotFound, ClassAuth, ClassRateLimited, ClassTransient, ClassPermanent, ClassUnknown}

// codeClasses is the documented error-code table.
var codeClasses = map[int64]Class{
	0:    ClassDeleted,
	4000: ClassPermanent,
	4002: ClassNotFound,
	4200: ClassNotFound,
	4100: ClassAuth,
	4101: ClassAuth,
	4009: ClassRateLimited,
	4020: ClassRateLimited,
	4013: ClassTransient,
	4102: ClassTransient,
	5000: ClassTransient,
	4011: ClassPermanent,
	4019: ClassPermanent,
	4022: ClassPermanent,
}

// DocumentedCode reports whether code is in the documented table. Metrics use
// it to keep the code label bounded.
func DocumentedCode(code int64) bool {
	_, ok := codeClasses[code]
	return ok
}

// ClassifyCode returns the class of a body code received with HTTP status
// status. The body decides whatever the status, as the official SDKs do,
// except where the body says nothing the table knows: then the status
// decides, and failing that the answer is unknown.
func ClassifyCode(code int64, status int) Class {
	if code == 0 {
		if status >= 200 && status < 300 {
			// Only a 2xx: a 3xx that carried a success body is still a
			// redirect, not this request's answer.
			return ClassDeleted
		}
		// A success code on an error status is a contradiction: believe
		// the status.
		return ClassifyStatus(status)
	}
	if class, ok := codeClasses[code]; ok {
		return class
	}
	if code >= 4000 && code <= 4999 {
		// Request-specific errors from the table's long tail.
		return ClassPermanent
	}
	if byStatus := ClassifyStatus(status); byStatus != ClassUnknown {
		return byStatus
	}
	return ClassUnknown
}

// ClassifyStatus returns the class an HTTP status implies when the body
// carries no usable code (a gateway's HTML page, an empty or oversized body).
// A 2xx without a readable body is unknown: the delete may or may not have
// happened, and a retry will tell (a deleted id answers 4002). So is a
// redirect (a base URL that moved): retried until the configuration is
// fixed, never taken for a success.
func ClassifyStatus(status int) Class {
	switch status {
	case http.StatusTooManyRequests:
		return ClassRateLimited
	case http.StatusUnauthorized, http.StatusForbidden:
		return ClassAuth
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ClassTransient
	}
	return ClassUnknown
}

// CodeLabel returns the metric label for a body code: the code itself when it
// is documented, "other" when it is not, and "none" when the answer had no
// code (a network error or a body that is not JSON).
func CodeLabel(code int64, hasCode bool) string {
	switch {
	case !hasCode:
		return "none"
	case DocumentedCode(code):
		return strconv.FormatInt(code, 10)
	default:
		return "other"
	}
}

// CodeLabels lists every value [CodeLabel] can return.
func CodeLabels() []string {
	labels := []string{"none", "other"}
	for code := range codeClasses {
		labels = append(labels, strconv.FormatInt(code, 10))
	}
	return labels
}
