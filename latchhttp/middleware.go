package latchhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/token"
)

// AuthMethod says how a request was authenticated.
type AuthMethod string

// Authentication methods.
const (
	AuthNone   AuthMethod = ""       // no valid session
	AuthCookie AuthMethod = "cookie" // the session cookie; unsafe methods passed the CSRF checks
	AuthBearer AuthMethod = "bearer" // an Authorization: Bearer access token
)

type ctxKey struct{}

// state is the per-request state of the middleware. It is also the request's
// context (it embeds the parent and answers Value(ctxKey{})) and holds the
// response writer wrapper, so the middleware costs one allocation for all
// three.
type state struct {
	context.Context
	s *Sessions

	sess    *latch.Session
	claims  *accesstoken.Claims // set iff the session came from a Bearer token
	authErr error               // why the request is unauthenticated, if it presented credentials
	bearer  bool                // the request presented a Bearer token
	cookie  string              // the session token the request carried (or Login set)

	// The anonymous CSRF secret (see anon.go), read from the request's
	// cookie on first use or minted by CSRFToken.
	anonSecret [token.AnonCSRFSecretLen]byte
	anonLoaded bool // the cookie was looked for
	anonOK     bool // anonSecret holds a secret
	anonCookie bool // the request carried an anonymous CSRF cookie

	// Pending response headers, written when the response is committed.
	setCookie     string
	setAnon       string // the anonymous CSRF cookie's Set-Cookie
	noStore       bool
	clearSiteData bool

	rw responseWriter
}

func (st *state) Value(key any) any {
	if key == (ctxKey{}) {
		return st
	}
	return st.Context.Value(key)
}

// method reports how the request is authenticated.
func (st *state) method() AuthMethod {
	switch {
	case st.sess == nil:
		return AuthNone
	case st.claims != nil:
		return AuthBearer
	default:
		return AuthCookie
	}
}

func stateOf(ctx context.Context) *state {
	st, _ := ctx.Value(ctxKey{}).(*state)
	return st
}

// responseWriter commits the pending headers (Vary, Set-Cookie,
// Cache-Control, Clear-Site-Data) just before the status line goes out.
// Unwrap lets http.ResponseController reach the underlying writer's
// Flush, Hijack, SetReadDeadline, EnableFullDuplex and so on.
type responseWriter struct {
	http.ResponseWriter
	st        *state
	committed bool
}

func (w *responseWriter) commit() {
	if w.committed {
		return
	}
	w.committed = true
	st := w.st
	h := w.ResponseWriter.Header()
	h["Vary"] = append(h["Vary"], "Cookie", "Authorization")
	if st.setCookie != "" {
		h["Set-Cookie"] = append(h["Set-Cookie"], st.setCookie)
	}
	if st.setAnon != "" {
		h["Set-Cookie"] = append(h["Set-Cookie"], st.setAnon)
	}
	if st.noStore {
		h.Set("Cache-Control", "no-store")
		h.Del("Expires")
		h.Del("Last-Modified")
		h.Del("ETag")
	}
	if st.clearSiteData {
		h.Set("Clear-Site-Data", `"cookies"`)
	}
}

func (w *responseWriter) WriteHeader(code int) {
	// Informational responses (103 Early Hints) do not commit: the final
	// response does.
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		w.commit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.commit()
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile) fast path.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	w.commit()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

// Flush implements http.Flusher for handlers that type-assert it.
func (w *responseWriter) Flush() {
	w.commit()
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker for handlers (WebSocket libraries) that
// type-assert it rather than use http.ResponseController.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func isSafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Middleware loads the request's session into its context and enforces
// CSRF protection; handlers read it with [FromContext]. Wrap your whole
// router with it:
//
//	http.ListenAndServe(addr, sessions.Middleware(mux))
//
// For every request it:
//
//   - authenticates "Authorization: Bearer <access token>" when
//     Config.AccessTokens is set: the token is verified and its session
//     loaded (a revoked session ends bearer access at once). Such a request
//     never uses the cookie, and an invalid token leaves it unauthenticated.
//   - otherwise validates the session cookie with Manager.ValidateClient. An
//     invalid, expired or revoked cookie leaves the request unauthenticated
//     and the cookie is deleted in the response.
//   - answers 503 (Config.ErrorHandler with ErrUnavailable) when the store
//     fails: such a request is never treated as authenticated.
//   - rejects unsafe methods (anything but GET, HEAD, OPTIONS, TRACE) that
//     come cross-origin, per net/http.CrossOriginProtection, unless they are
//     bearer-authenticated; this also stops login CSRF on forms posted
//     without a session.
//   - requires a valid synchronizer token (see [CSRFToken]) on unsafe
//     requests, from the X-CSRF-Token header or else the csrf_token field of
//     a url-encoded or multipart form body (never the query string): the
//     session's token with a session cookie, else the anonymous token of the
//     request's own anonymous CSRF cookie (unless the request carries a
//     Bearer or DPoP Authorization header, or its endpoint is in
//     Config.AnonymousCSRFExempt or Config.CrossOriginBypass). Rejections
//     get 403 and a latch.EventCSRFRejected event.
//   - adds "Vary: Cookie, Authorization" to the response, and writes
//     Set-Cookie only when the session changed (login, renewal, logout, a
//     dead cookie), always with "Cache-Control: no-store".
//
// Tokens are never read from the URL.
func (s *Sessions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{Context: r.Context(), s: s}
		st.rw = responseWriter{ResponseWriter: w, st: st}
		r2 := r.WithContext(st)
		// The server removes the temporary files of a parsed multipart form
		// only for its own request, not for this copy.
		defer func() {
			if r2.MultipartForm != nil && r.MultipartForm == nil {
				r2.MultipartForm.RemoveAll()
			}
		}()
		if s.authenticate(&st.rw, r2, st) {
			next.ServeHTTP(&st.rw, r2)
		}
		st.rw.commit()
	})
}

// authenticate fills st from r and runs the CSRF checks. It answers the
// request itself and returns false if the request must not proceed.
func (s *Sessions) authenticate(w *responseWriter, r *http.Request, st *state) bool {
	ctx := r.Context()
	unsafe := !isSafeMethod(r.Method)

	if s.bearer != nil {
		if scheme, tok, ok := bearerToken(r); ok {
			st.bearer = true
			sess, claims, err := s.verifyBearer(r, scheme, tok)
			if s.dpop != nil && len(r.Header.Values("DPoP")) > 0 {
				if n := s.dpop.Nonce(); n != "" { // for the client's next proof (RFC 9449 §9)
					w.Header().Set("DPoP-Nonce", n)
				}
			}
			switch {
			case err == nil:
				st.sess, st.claims = sess, &claims
			case errors.Is(err, latch.ErrUnavailable):
				s.errHandler(w, r, err)
				return false
			default:
				st.authErr = err
			}
			return true
		}
	}

	tok, hasCookie := readCookie(r, s.name)
	st.cookie = tok
	if unsafe {
		// Layer one: refuse cross-origin browser requests before any store
		// read, whether or not they carry a session (login CSRF).
		if err := s.cop.Check(r); err != nil {
			s.rejectCSRF(w, r, st, csrfCrossOrigin)
			return false
		}
	}
	if hasCookie {
		sess, err := s.m.ValidateClient(ctx, tok, s.client(r))
		switch {
		case err == nil:
			st.sess = sess
		case errors.Is(err, latch.ErrInvalidToken), errors.Is(err, latch.ErrRevoked), errors.Is(err, latch.ErrExpired):
			// A dead cookie: proceed unauthenticated and delete it.
			st.authErr = err
			st.cookie = ""
			st.setCookie = s.expiredCookie()
			st.noStore = true
		default:
			s.errHandler(w, r, errUnavailable(err))
			return false
		}
	}
	if !unsafe {
		return true
	}
	// Layer two: the synchronizer token — the session's, or without a
	// session the anonymous cookie's.
	if st.sess == nil && !s.needsAnonToken(r) {
		return true
	}
	got, err := s.csrfTokenFrom(w, r)
	if err != nil {
		s.errHandler(w, r, err)
		return false
	}
	var ok bool
	switch {
	case got == "":
		s.rejectCSRF(w, r, st, csrfMissing)
		return false
	case st.sess != nil:
		ok = s.m.CheckCSRF(st.sess, got)
	default:
		ok = s.checkAnon(r, st, got)
	}
	if !ok {
		s.rejectCSRF(w, r, st, csrfInvalid)
		return false
	}
	return true
}

// errUnavailable makes sure a store failure matches ErrUnavailable.
func errUnavailable(err error) error {
	if errors.Is(err, latch.ErrUnavailable) {
		return err
	}
	return errors.Join(latch.ErrUnavailable, err)
}

// verifyBearer verifies an access token sent with scheme and loads its
// session, so that a revoked, expired or renewed session ends bearer
// access at once even if the verifier has no online check; it records
// activity like a cookie, but only after the token's DPoP binding was
// enforced (checkDPoP), so a refused proof changes nothing.
func (s *Sessions) verifyBearer(r *http.Request, scheme, tok string) (*latch.Session, accesstoken.Claims, error) {
	claims, err := s.bearer.Verify(r.Context(), tok)
	if err != nil {
		return nil, claims, err
	}
	if claims.SessionID == "" {
		return nil, claims, errNoSID
	}
	var prove func(context.Context) error
	if claims.JKT != "" || scheme != "Bearer" {
		prove = func(context.Context) error { return s.checkDPoP(r, scheme, tok, claims) }
	}
	sess, err := s.m.ValidateAccessProof(r.Context(), claims, s.client(r), latch.AuthRequirement{}, prove)
	return sess, claims, err
}

var errNoSID = errors.New("latchhttp: access token has no sid claim")

// checkDPoP enforces the token's DPoP binding: a bound token only with the
// DPoP scheme and a proof by its key for this request (RFC 9449 §7).
func (s *Sessions) checkDPoP(r *http.Request, scheme, tok string, c accesstoken.Claims) error {
	if err := dpop.CheckScheme(scheme, c.JKT); err != nil {
		return err
	}
	if scheme != "DPoP" {
		return nil
	}
	proofs := r.Header.Values("DPoP")
	switch {
	case c.JKT == "":
		return dpop.ErrProofRequired // the DPoP scheme with an unbound token
	case len(proofs) == 0:
		return dpop.ErrProofRequired
	case len(proofs) > 1 || s.dpop == nil:
		return dpop.ErrMalformedProof
	}
	u := ""
	if s.dpopURL != nil {
		u = s.dpopURL(r)
	} else {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		u = scheme + "://" + r.Host + r.URL.EscapedPath()
	}
	_, err := s.dpop.Verify(r.Context(), proofs[0], dpop.Use{Method: r.Method, URL: u, AccessToken: tok, JKT: c.JKT})
	return err
}

// bearerToken returns the scheme ("Bearer" or "DPoP") and token of an
// Authorization header with either.
func bearerToken(r *http.Request) (scheme, tok string, ok bool) {
	v := r.Header["Authorization"]
	if len(v) == 0 {
		return "", "", false
	}
	a := v[0]
	for _, sc := range []string{"Bearer", "DPoP"} {
		if len(a) > len(sc) && a[len(sc)] == ' ' && strings.EqualFold(a[:len(sc)], sc) {
			return sc, strings.TrimSpace(a[len(sc)+1:]), true
		}
	}
	return "", "", false
}

// readCookie finds the cookie called name without allocating. If the
// request carries several cookies of that name, the first one counts (a
// __Host- cookie cannot be planted by another host).
func readCookie(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.TrimSpace(part)
			eq := strings.IndexByte(part, '=')
			if eq < 0 || part[:eq] != name {
				continue
			}
			v := part[eq+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// cookie returns the Set-Cookie value carrying token until the session's
// absolute deadline.
func (s *Sessions) cookie(token string, expires time.Time) string {
	return s.setCookieLine(s.name, token, max(1, int(expires.Sub(s.now())/time.Second)))
}

// expiredCookie returns the Set-Cookie value that deletes the cookie: the
// same name, Path, Domain, Secure, HttpOnly and SameSite, so that browsers
// match and accept it.
func (s *Sessions) expiredCookie() string { return s.setCookieLine(s.name, "", -1) }

// setCookieLine returns a Set-Cookie value for the cookie called name with
// the configured Path, Domain, Secure and SameSite, always HttpOnly. A
// negative maxAge deletes the cookie (Max-Age=0 and an Expires in the past).
func (s *Sessions) setCookieLine(name, value string, maxAge int) string {
	c := http.Cookie{
		Name:     name,
		Value:    value,
		Path:     s.path,
		Domain:   s.domain,
		MaxAge:   maxAge,
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: s.sameSite,
	}
	if maxAge < 0 {
		c.Expires = time.Unix(0, 0)
	}
	return c.String()
}

// RequireSession answers requests without a valid session with 401
// (Config.ErrorHandler with an error matching ErrUnauthenticated) and passes
// the others to next. It must run inside Middleware.
func (s *Sessions) RequireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := mustState(r, "RequireSession")
		if st.sess == nil {
			err := ErrUnauthenticated
			if st.authErr != nil {
				err = &authError{st.authErr}
			}
			if e, ok := errors.AsType[*dpop.Error](st.authErr); ok {
				w.Header().Set("WWW-Authenticate", dpop.Challenge(st.authErr))
				if e.Nonce != "" { // Config.DPoP has a NonceKey (RFC 9449 §9)
					w.Header().Set("DPoP-Nonce", e.Nonce)
				}
			} else if st.bearer {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			} else if s.bearer != nil {
				w.Header().Set("WWW-Authenticate", `Bearer`)
			}
			s.errHandler(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authError is ErrUnauthenticated with the reason the credentials failed.
type authError struct{ cause error }

func (e *authError) Error() string        { return ErrUnauthenticated.Error() + ": " + e.cause.Error() }
func (e *authError) Unwrap() []error      { return []error{ErrUnauthenticated, e.cause} }
func (e *authError) Is(target error) bool { return target == ErrUnauthenticated }

func mustState(r *http.Request, fn string) *state {
	st := stateOf(r.Context())
	if st == nil {
		panic("latchhttp: " + fn + " called on a request that did not pass through Sessions.Middleware")
	}
	return st
}

// StatusCode maps an error given to Config.ErrorHandler to its HTTP status.
func StatusCode(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrCSRF):
		return http.StatusForbidden
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, latch.ErrInsufficientAuth):
		return http.StatusUnauthorized
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	default:
		return http.StatusServiceUnavailable
	}
}

// DefaultErrorHandler answers with the status of StatusCode(err) and its
// standard text; the error's own text is not sent.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	code := StatusCode(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(code), code)
}
