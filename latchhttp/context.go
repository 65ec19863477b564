package latchhttp

import (
	"context"
	"net/http"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
)

// FromContext returns the session the middleware authenticated for the
// request whose context is ctx, if any. After Login or Renew in the same
// request it returns the new session; after Logout, none.
func FromContext(ctx context.Context) (*latch.Session, bool) {
	st := stateOf(ctx)
	if st == nil || st.sess == nil {
		return nil, false
	}
	return st.sess, true
}

// AuthError returns why the credentials the request presented did not
// authenticate it: an error matching latch.ErrRevoked, latch.ErrExpired or
// latch.ErrInvalidToken for a session cookie (the middleware deletes such a
// cookie), or the verifier's error for a Bearer token. It is nil if the
// request presented none, or they worked. A page can use it to tell a user
// whose session ended elsewhere why they must sign in again. It never
// contains a token.
func AuthError(ctx context.Context) error {
	st := stateOf(ctx)
	if st == nil {
		return nil
	}
	return st.authErr
}

// Method reports how the request whose context is ctx was authenticated.
func Method(ctx context.Context) AuthMethod {
	st := stateOf(ctx)
	if st == nil {
		return AuthNone
	}
	return st.method()
}

// AccessClaims returns the verified claims of a bearer-authenticated
// request's access token.
func AccessClaims(ctx context.Context) (accesstoken.Claims, bool) {
	st := stateOf(ctx)
	if st == nil || st.method() != AuthBearer {
		return accesstoken.Claims{}, false
	}
	return *st.claims, true
}

// CSRFToken returns a synchronizer token for the request's forms, to put in
// a hidden csrf_token field or in the X-CSRF-Token header of scripted
// requests:
//
//   - with a cookie session, the session's token: valid until the session
//     is renewed or ends;
//   - without a session (a login, sign-up or password-reset form), an
//     anonymous token, tied to a random secret in the HttpOnly
//     "__Host-latch-csrf" cookie (the session cookie's name + "-csrf"),
//     which CSRFToken sets on the response when the visitor has none, and
//     refreshes to a full AnonCSRFMaxAge when they do. Only requests
//     carrying that same cookie accept the token; Login expires it;
//   - "" for a bearer-authenticated request, which needs no token, and for
//     a visitor without the anonymous cookie once the response is
//     committed (the cookie can no longer be set).
//
// Every call returns a differently masked token (BREACH); all are valid.
// A response that carries a CSRF token is marked "Cache-Control: no-store",
// so call CSRFToken before writing the response (compute it, then render
// the template).
func CSRFToken(r *http.Request) string {
	st := stateOf(r.Context())
	if st == nil {
		return ""
	}
	var t string
	var err error
	switch st.method() {
	case AuthCookie:
		t, err = st.s.m.CSRFToken(st.sess)
	case AuthNone:
		t, err = st.s.anonToken(r, st)
	}
	if err != nil || t == "" {
		return ""
	}
	st.noStore = true
	return t
}

// IdleTimeLeft returns how long the request's session has before its idle
// or absolute deadline, whichever is first, unless it is used again; zero if
// there is no session. A page can show it, or schedule a warning, so that the
// user is asked to sign in again before it runs out rather than after.
func IdleTimeLeft(r *http.Request) time.Duration {
	st := stateOf(r.Context())
	if st == nil || st.sess == nil {
		return 0
	}
	if d := st.sess.Deadline().Sub(st.s.now()); d > 0 {
		return d
	}
	return 0
}

// Info describes the request's session for templates and JSON responses
// (for example a "whoami" endpoint polled by a page that warns before the
// session times out). It holds no secret other than the masked CSRF token.
type Info struct {
	Authenticated bool       `json:"authenticated"`
	Method        AuthMethod `json:"method,omitempty"`
	SessionID     string     `json:"session_id,omitempty"`
	Subject       string     `json:"subject,omitempty"`
	AuthTime      time.Time  `json:"auth_time,omitzero"`
	// IdleExpiresAt moves forward as the session is used; ExpiresAt never
	// moves. IdleSecondsLeft counts down to the earlier of the two.
	IdleExpiresAt   time.Time `json:"idle_expires_at,omitzero"`
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	IdleSecondsLeft int64     `json:"idle_seconds_left"`
	// CSRFToken is set for cookie-authenticated requests (see CSRFToken).
	CSRFToken string `json:"csrf_token,omitempty"`
}

// SessionInfo returns the Info of the request's session. Like CSRFToken it
// marks the response "Cache-Control: no-store" when it includes a CSRF token.
func SessionInfo(r *http.Request) Info {
	sess, ok := FromContext(r.Context())
	if !ok {
		return Info{}
	}
	return Info{
		Authenticated:   true,
		Method:          Method(r.Context()),
		SessionID:       sess.ID(),
		Subject:         sess.Subject(),
		AuthTime:        sess.AuthTime(),
		IdleExpiresAt:   sess.IdleExpiresAt(),
		ExpiresAt:       sess.ExpiresAt(),
		IdleSecondsLeft: int64(IdleTimeLeft(r) / time.Second),
		CSRFToken:       CSRFToken(r),
	}
}
