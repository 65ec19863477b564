package latchhttp

import (
	"net/http"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store"
)

// Login starts a session for a user your handler has just authenticated
// (checked a password, completed an OAuth flow…) and sets its cookie on the
// response. It is fixation-safe: the session token the request carried, if
// any, is passed as p.Replace and revoked, so a cookie planted before login
// is never promoted to an authenticated session. p.Client defaults to the
// request's IP and User-Agent.
//
// Call it before writing the response (it fails with ErrHeadersWritten
// otherwise), from a handler behind Middleware; the response is marked
// "Cache-Control: no-store". The anonymous CSRF cookie, if any, is expired:
// from now on only the session's CSRF token is accepted. For the rest of
// the request FromContext and CSRFToken see the new session. The returned Issued also holds a refresh
// token (and an access token if the Manager issues them) for API clients;
// browsers need only the cookie, which Login has set.
func (s *Sessions) Login(w http.ResponseWriter, r *http.Request, p latch.NewSession) (*latch.Issued, error) {
	st := mustState(r, "Login")
	if st.rw.committed {
		return nil, ErrHeadersWritten
	}
	if p.Replace == "" {
		p.Replace = st.cookie
	}
	if p.Client == (latch.Client{}) {
		p.Client = s.client(r)
	}
	iss, err := s.m.Create(r.Context(), p)
	if err != nil {
		return nil, err
	}
	s.setSession(st, iss)
	s.endAnon(r, st)
	return iss, nil
}

func (s *Sessions) setSession(st *state, iss *latch.Issued) {
	tok := iss.SessionToken.Reveal()
	st.sess, st.claims, st.cookie, st.authErr = iss.Session, nil, tok, nil
	st.setCookie = s.cookie(tok, iss.Session.ExpiresAt())
	st.noStore = true
	st.clearSiteData = false
}

// Logout ends the request's session: it revokes it in the store (so its
// cookie, refresh token and access tokens all stop working on every
// replica), deletes the cookie with identical attributes and sends
// Clear-Site-Data: "cookies". A request without a valid session still gets
// its cookie deleted.
//
// Serve logout on an unsafe method (POST), so the middleware's CSRF checks
// apply. If revocation fails (the store is unavailable) Logout returns the
// error and changes nothing in the response; answer 503 and let the user
// retry. Call it before writing the response.
func (s *Sessions) Logout(w http.ResponseWriter, r *http.Request) error {
	st := mustState(r, "Logout")
	if st.rw.committed {
		return ErrHeadersWritten
	}
	ctx := r.Context()
	var err error
	switch {
	case st.method() == AuthBearer:
		err = s.m.Revoke(ctx, st.sess.ID(), store.ReasonLogout)
	case st.cookie != "":
		// RevokeToken checks the token's secret, so only its holder can
		// end the session.
		err = s.m.RevokeToken(ctx, st.cookie, store.ReasonLogout)
	}
	if err != nil {
		return err
	}
	st.sess, st.claims, st.cookie = nil, nil, ""
	st.setCookie = s.expiredCookie()
	st.noStore = true
	st.clearSiteData = true
	return nil
}

// Renew gives the request's session fresh secrets after a privilege change
// (a new role, a step-up re-authentication): every token issued before, the
// cookie and the CSRF tokens of pages already served included, stops
// working. For a cookie-authenticated request the new cookie is set; for a
// bearer-authenticated one the caller must hand the returned tokens to the
// client. Call it before writing the response.
func (s *Sessions) Renew(w http.ResponseWriter, r *http.Request, ren latch.Renewal) (*latch.Issued, error) {
	st := mustState(r, "Renew")
	if st.rw.committed {
		return nil, ErrHeadersWritten
	}
	if st.sess == nil {
		return nil, ErrUnauthenticated
	}
	iss, err := s.m.Renew(r.Context(), st.sess.ID(), ren)
	if err != nil {
		return nil, err
	}
	if st.method() == AuthCookie {
		s.setSession(st, iss)
	} else {
		st.sess = iss.Session
		st.noStore = true
	}
	return iss, nil
}

// RevokeOthers signs the user out everywhere else: it revokes every other
// live session of the request's subject and keeps the current one. It
// returns how many sessions it revoked.
func (s *Sessions) RevokeOthers(w http.ResponseWriter, r *http.Request) (int, error) {
	st := mustState(r, "RevokeOthers")
	if st.sess == nil {
		return 0, ErrUnauthenticated
	}
	return s.m.RevokeSubject(r.Context(), st.sess.Subject(), st.sess.ID())
}

// Manager returns the latch.Manager the layer runs on.
func (s *Sessions) Manager() *latch.Manager { return s.m }
