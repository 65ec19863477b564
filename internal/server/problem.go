package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
)

// Stable problem codes: part of the HTTP contract. Clients branch on them.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeInvalidToken     = "invalid_token"
	CodeExpired          = "expired"
	CodeRevoked          = "revoked"
	CodeRefreshReuse     = "refresh_reuse"
	CodeCSRF             = "csrf"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeStoreUnavailable = "store_unavailable"
	// CodeMethodNotAllowed (405, with Allow) answers a known path called
	// with a method it does not accept.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeUnsupportedMediaType (415) answers a body that is not JSON.
	CodeUnsupportedMediaType = "unsupported_media_type"
	// CodeRateLimited (429, with Retry-After) answers a client over its
	// request rate on a public endpoint.
	CodeRateLimited = "rate_limited"
	// CodeInvalidDPoPProof (401) answers a missing, malformed or
	// mismatched DPoP proof (RFC 9449 §7.1).
	CodeInvalidDPoPProof = "invalid_dpop_proof"
	// CodeUseDPoPNonce (401, with DPoP-Nonce) asks the client to retry its
	// DPoP proof with the server's nonce (RFC 9449 §8).
	CodeUseDPoPNonce = "use_dpop_nonce"
	// CodeInsufficientUserAuthentication (401) answers a session that does
	// not meet a verify's max_age or acr_values (RFC 9470).
	CodeInsufficientUserAuthentication = "insufficient_user_authentication"
	// CodeInternal answers an unexpected failure (a bug). Its detail never
	// says more than that.
	CodeInternal = "internal"
)

// problemTypeBase prefixes the type URI of every problem document; the
// fragment is the code, so the type is as stable as the code.
const problemTypeBase = "https://github.com/latch-sessions/latch/blob/main/api/problems.md#"

// Problem is an RFC 9457 problem document with latch's stable code member.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	// Reason names the check a DPoP proof failed (dpop.Reason) on
	// invalid_dpop_proof and use_dpop_nonce answers, so that each refusal
	// can be told apart by a program without parsing detail.
	Reason dpop.Reason `json:"reason,omitempty"`
}

var titles = map[string]string{
	CodeBadRequest:                     "Bad request",
	CodeUnauthorized:                   "Unauthorized",
	CodeInvalidToken:                   "Invalid token",
	CodeExpired:                        "Session expired",
	CodeRevoked:                        "Session revoked",
	CodeRefreshReuse:                   "Refresh token reuse detected",
	CodeCSRF:                           "CSRF check failed",
	CodeNotFound:                       "Not found",
	CodeConflict:                       "Conflict",
	CodeTooLarge:                       "Request body too large",
	CodeStoreUnavailable:               "Session store unavailable",
	CodeMethodNotAllowed:               "Method not allowed",
	CodeUnsupportedMediaType:           "Unsupported media type",
	CodeRateLimited:                    "Too many requests",
	CodeInvalidDPoPProof:               "Invalid DPoP proof",
	CodeUseDPoPNonce:                   "DPoP nonce required",
	CodeInsufficientUserAuthentication: "Insufficient user authentication",
	CodeInternal:                       "Internal server error",
}

// apiError is an error that knows its problem document. Handlers return
// it (or a latch error, mapped by problemFor).
type apiError struct {
	status int
	code   string
	detail string
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

func errorf(status int, code, detail string) error {
	return &apiError{status: status, code: code, detail: detail}
}

func badRequest(detail string) error { return errorf(http.StatusBadRequest, CodeBadRequest, detail) }

// problemFor maps an error to its problem document. Latch and accesstoken
// errors are matched with errors.Is; their messages never contain a token,
// but only fixed details are sent anyway, except for input errors, whose
// message names the refused field.
func problemFor(err error) Problem {
	status, code, detail := http.StatusInternalServerError, CodeInternal, "unexpected error"
	var ae *apiError
	var ie *latch.InputError
	var de *dpop.Error
	var reason dpop.Reason
	switch {
	case errors.As(err, &de):
		status, code, detail, reason = http.StatusUnauthorized, de.Code(), de.Description(), de.Reason
	case errors.As(err, &ae):
		status, code, detail = ae.status, ae.code, ae.detail
	case errors.As(err, &ie):
		status, code, detail = http.StatusBadRequest, CodeBadRequest, ie.Field+": "+ie.Reason
	case errors.Is(err, latch.ErrBadInput):
		status, code, detail = http.StatusBadRequest, CodeBadRequest, "invalid input"
	case errors.Is(err, latch.ErrInsufficientAuth):
		status, code, detail = http.StatusUnauthorized, CodeInsufficientUserAuthentication,
			"the session's authentication is older or weaker than this action demands; re-authenticate the user and renew the session with the new auth_time, acr and amr"
	case errors.Is(err, latch.ErrRefreshReuse):
		status, code, detail = http.StatusUnauthorized, CodeRefreshReuse,
			"an already-used refresh token was presented; the session has been revoked"
	case errors.Is(err, latch.ErrRevoked), errors.Is(err, accesstoken.ErrRevoked):
		status, code, detail = http.StatusUnauthorized, CodeRevoked, "the session was revoked"
	case errors.Is(err, latch.ErrIdleTimeout):
		status, code, detail = http.StatusUnauthorized, CodeExpired, "the session expired (idle timeout)"
	case errors.Is(err, latch.ErrAbsoluteTimeout), errors.Is(err, latch.ErrExpired):
		status, code, detail = http.StatusUnauthorized, CodeExpired, "the session expired"
	case errors.Is(err, accesstoken.ErrExpired):
		status, code, detail = http.StatusUnauthorized, CodeExpired, "the access token expired"
	case errors.Is(err, latch.ErrUnavailable):
		status, code, detail = http.StatusServiceUnavailable, CodeStoreUnavailable,
			"the session store could not be reached; try again"
	case errors.Is(err, latch.ErrInvalidToken):
		status, code, detail = http.StatusUnauthorized, CodeInvalidToken, "the token is not valid"
	case isAccessTokenError(err):
		status, code, detail = http.StatusUnauthorized, CodeInvalidToken, "the access token is not valid"
	case errors.Is(err, latch.ErrNotFound):
		status, code, detail = http.StatusNotFound, CodeNotFound, "no live session has that ID"
	case errors.Is(err, latch.ErrConflict):
		status, code, detail = http.StatusConflict, CodeConflict,
			"a concurrent write changed the session; re-read and retry"
	}
	return Problem{
		Type:   problemTypeBase + code,
		Title:  titles[code],
		Status: status,
		Detail: detail,
		Code:   code,
		Reason: reason,
	}
}

func isAccessTokenError(err error) bool {
	for _, e := range []error{accesstoken.ErrMalformed, accesstoken.ErrTooLarge, accesstoken.ErrHeader,
		accesstoken.ErrType, accesstoken.ErrAlgorithm, accesstoken.ErrUnknownKey, accesstoken.ErrSignature,
		accesstoken.ErrMissingClaim, accesstoken.ErrNotYetValid, accesstoken.ErrIssuer, accesstoken.ErrAudience} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// writeProblem sends p. 401 answers carry a WWW-Authenticate challenge
// (RFC 6750) so generic HTTP clients know to send a Bearer credential.
func writeProblem(w http.ResponseWriter, p Problem) {
	h := w.Header()
	if p.Status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		if p.Code == CodeUnauthorized {
			h.Set("WWW-Authenticate", `Bearer realm="latch"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="latch", error="invalid_token"`)
		}
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("ETag")
	b, _ := marshal(p)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(p.Status)
	w.Write(b)
}
