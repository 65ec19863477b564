package latchhttp

import (
	"net/http"
	"strings"
	"time"

	"github.com/latch-sessions/latch/internal/token"
)

// Anonymous CSRF tokens protect the unsafe requests of visitors without a
// session — login, sign-up and password-reset forms — as docs/protocol.md
// section 2 specifies, byte for byte like the Node and Python clients:
//
//   - The cookie (session cookie name + "-csrf") holds s, 32 random bytes,
//     base64url without padding. It is HttpOnly and shares the session
//     cookie's Path, Domain, Secure and SameSite, so with the default
//     "__Host-" name no other host can plant one.
//   - The token is a masking of k = HMAC-SHA256(s, "latch anon csrf v1"),
//     exactly like a session's token, so a page never shows s, and a token
//     is only valid with the cookie it was minted for: a made-up token, or
//     one minted for another visitor's cookie, is refused.
//   - Login expires the cookie: from then on only the session's token
//     works.

// needsAnonToken reports whether an unsafe request without a session must
// carry an anonymous CSRF token: all must, except those that authenticate
// with an Authorization header a browser never sends on its own (Bearer or
// DPoP; Basic credentials are attached by browsers, so they count as
// ambient) and the endpoints exempted in the Config.
func (s *Sessions) needsAnonToken(r *http.Request) bool {
	if v := r.Header["Authorization"]; len(v) > 0 {
		scheme, _, _ := strings.Cut(strings.TrimSpace(v[0]), " ")
		if strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP") {
			return false
		}
	}
	if s.anonExempt != nil {
		if _, pattern := s.anonExempt.Handler(r); pattern != "" {
			return false
		}
	}
	return true
}

// loadAnon reads the request's anonymous CSRF cookie once. A malformed
// value counts as none (CSRFToken then replaces it).
func (st *state) loadAnon(r *http.Request) {
	if st.anonLoaded {
		return
	}
	st.anonLoaded = true
	v, ok := readCookie(r, st.s.anonName)
	if !ok {
		return
	}
	st.anonCookie = true
	st.anonSecret, st.anonOK = token.ParseAnonCSRF(v)
}

// checkAnon reports whether tok is an anonymous CSRF token for the
// request's own anonymous CSRF cookie. Without a valid cookie nothing is.
func (s *Sessions) checkAnon(r *http.Request, st *state, tok string) bool {
	st.loadAnon(r)
	if !st.anonOK {
		return false
	}
	k := token.AnonCSRFKey(&st.anonSecret)
	return token.CheckCSRF(tok, &k)
}

// anonToken returns a fresh masking of the request's anonymous CSRF key,
// minting the cookie's secret first if the request had no valid one. The
// cookie is (re)set with a full Max-Age, so the token lives as long as the
// page. After the response is committed no cookie can be set, so a visitor
// without one gets "": a token their browser could not back would only be
// refused.
func (s *Sessions) anonToken(r *http.Request, st *state) (string, error) {
	st.loadAnon(r)
	if !st.rw.committed {
		if !st.anonOK {
			secret, err := token.NewAnonCSRF(s.rand)
			if err != nil {
				return "", err
			}
			st.anonSecret, st.anonOK = secret, true
		}
		st.setAnon = s.anonSetCookie(&st.anonSecret)
	} else if !st.anonOK {
		return "", nil
	}
	k := token.AnonCSRFKey(&st.anonSecret)
	return token.MaskCSRF(s.rand, &k)
}

// endAnon expires the anonymous CSRF cookie at login, if the request
// carried one or this response was going to set one.
func (s *Sessions) endAnon(r *http.Request, st *state) {
	st.loadAnon(r)
	st.anonOK, st.anonSecret = false, [token.AnonCSRFSecretLen]byte{}
	st.setAnon = ""
	if st.anonCookie {
		st.setAnon = s.setCookieLine(s.anonName, "", -1)
	}
}

func (s *Sessions) anonSetCookie(secret *[token.AnonCSRFSecretLen]byte) string {
	return s.setCookieLine(s.anonName, token.EncodeAnonCSRF(secret), int(AnonCSRFMaxAge/time.Second))
}
