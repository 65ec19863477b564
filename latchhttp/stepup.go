package latchhttp

import (
	"net/http"
	"time"

	"github.com/latch-sessions/latch"
)

// RequireRecentAuth returns middleware for sensitive handlers (changing a
// password, signing out other devices, paying): it passes a request on only
// if its session's user authenticated within maxAge (if positive) and,
// when acrValues are given, with one of those ACR values (RFC 9470 step-up).
// It must run inside Middleware; it reads the session the middleware
// loaded, so it costs no store call.
//
// A request without a valid session gets what RequireSession gives it. A
// session that does not meet the requirement is answered:
//
//   - for an "Authorization: Bearer" request, 401 with
//     WWW-Authenticate: Bearer error="insufficient_user_authentication",
//     error_description, max_age and acr_values (RFC 9470 §3), through
//     Config.ErrorHandler with an error matching latch.ErrInsufficientAuth;
//     the client obtains a fresh token and retries;
//   - for a cookie request, by Config.Reauthenticate — a browser needs a
//     page that asks for the password again, not a status code — or, if
//     that is nil, like a Bearer request without the header.
//
// Either way next does not run and nothing is written to the session.
// Invalid acrValues (see latch.AuthRequirement.Valid) are a programming
// error: RequireRecentAuth panics.
func (s *Sessions) RequireRecentAuth(maxAge time.Duration, acrValues ...string) func(http.Handler) http.Handler {
	need := latch.AuthRequirement{MaxAge: maxAge, ACRValues: append([]string(nil), acrValues...)}
	if err := need.Valid(); err != nil {
		panic("latchhttp: RequireRecentAuth: " + err.Error())
	}
	return func(next http.Handler) http.Handler {
		return s.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := mustState(r, "RequireRecentAuth")
			err := need.Check(st.sess.AuthTime(), st.sess.ACR(), s.now())
			switch {
			case err == nil:
				next.ServeHTTP(w, r)
			case st.method() == AuthBearer:
				w.Header().Set("WWW-Authenticate", need.Challenge())
				s.errHandler(w, r, err)
			case s.reauth != nil:
				st.noStore = true
				s.reauth(w, r, need)
			default:
				s.errHandler(w, r, err)
			}
		}))
	}
}
