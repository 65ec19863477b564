// Package latchhttp adds latch sessions to any net/http application: a
// middleware that loads the session from a secure cookie (or a Bearer access
// token) into the request context, CSRF protection, and helpers for login,
// logout, renewal and "sign out everywhere else". It works with every router
// that speaks http.Handler: the standard ServeMux, chi, gorilla/mux.
//
// Most users need four calls: [New] once, [Sessions.Middleware] around the
// router, [Sessions.Login] in the login handler and [FromContext] in the
// others. [Sessions.RequireSession] guards pages that need a user,
// [CSRFToken] fills forms, and [Sessions.Logout] ends the session.
//
//	m, err := latch.New(latch.Config{Store: store})
//	if err != nil { … }
//	sessions, err := latchhttp.New(m, latchhttp.Config{})
//	if err != nil { … }
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		user, ok := checkPassword(r.PostFormValue("user"), r.PostFormValue("password"))
//		if !ok { … }
//		if _, err := sessions.Login(w, r, latch.NewSession{Subject: user}); err != nil { … }
//		http.Redirect(w, r, "/account", http.StatusSeeOther)
//	})
//	mux.Handle("GET /account", sessions.RequireSession(http.HandlerFunc(
//		func(w http.ResponseWriter, r *http.Request) {
//			s, _ := latchhttp.FromContext(r.Context())
//			page.Execute(w, map[string]any{"User": s.Subject(), "CSRF": latchhttp.CSRFToken(r)})
//		})))
//	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
//		if err := sessions.Logout(w, r); err != nil { … }
//		http.Redirect(w, r, "/", http.StatusSeeOther)
//	})
//	http.ListenAndServe(addr, sessions.Middleware(mux))
//
// and in every form that posts:
//
//	<input type="hidden" name="csrf_token" value="{{.CSRF}}">
//
// # Cookies
//
// The zero Config gives the safest cookie browsers support: named
// "__Host-latch", Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, and a
// Max-Age that ends with the session's absolute deadline. The cookie holds
// only the opaque session token; the session lives in the store. [New]
// refuses combinations that browsers would reject or that weaken the
// cookie, with a *[ConfigError] saying why: SameSite=None without Secure, a
// __Host- name with a Domain or a Path other than /, a __Secure- or __Host-
// name without Secure, and any cookie without Secure unless
// Config.InsecureCookieForDevelopmentOnly is set.
//
// Development over plain HTTP needs no such option in most browsers: they
// treat http://localhost and http://127.0.0.1 as secure contexts, so
// Chromium and Firefox store and send the Secure __Host-latch cookie there.
// Behind a TLS-terminating proxy nothing changes either: the browser sees
// https, so the cookie stays Secure while the application serves plain HTTP
// to the proxy. Make sure the proxy forwards the Host header unchanged (the
// cross-origin check compares Origin with Host), and set
// Config.ClientIPHeader with Config.TrustedProxies to record client
// addresses instead of the proxy's.
//
// Set-Cookie is written only when the session changed: at login, renewal and
// logout, and to delete a cookie whose session is gone (invalid, expired or
// revoked); and for visitors without a session, the anonymous CSRF cookie
// when a page asks for a CSRF token. Such responses, and any response that carries a CSRF token, get
// "Cache-Control: no-store"; every response gets "Vary: Cookie,
// Authorization". The middleware's ResponseWriter implements Unwrap, so
// http.ResponseController (Flush, Hijack, deadlines) keeps working.
//
// # Bearer tokens
//
// With Config.AccessTokens (an *accesstoken.Verifier) the middleware also
// accepts "Authorization: Bearer <access token>". It verifies the token and
// then loads its session, so revoking the session (logout, "sign out
// everywhere", an administrator) ends bearer access at once, not when the
// token expires. A request with a Bearer token is judged by that token only:
// an invalid one is not rescued by a cookie. Bearer-authenticated requests
// need no CSRF token, because browsers never attach an Authorization header
// on their own. Tokens are never read from the query string.
//
// A DPoP-bound token (cnf.jkt, RFC 9449) is refused as Bearer. With
// Config.DPoP it is accepted as "Authorization: DPoP <access token>" with a
// "DPoP" proof header by the bound key for the request's method and URL
// (Config.DPoPURL behind a rewriting proxy), each proof once; refusals get
// the RFC 9449 WWW-Authenticate: DPoP challenge from RequireSession.
//
// # CSRF protection
//
// Unsafe methods (anything but GET, HEAD, OPTIONS and TRACE) that are not
// bearer-authenticated pass two checks (docs/protocol.md, section 2):
//
//  1. Cross-origin requests are refused with Go's
//     net/http.CrossOriginProtection (Sec-Fetch-Site, else Origin against
//     Host). This applies with or without a session, so a cross-site form
//     cannot log a victim into the attacker's account either. Extra origins
//     can be trusted with Config.TrustedOrigins; endpoints that receive
//     cross-site posts by design (an OpenID Connect form_post or SAML
//     callback) can be exempted with Config.CrossOriginBypass.
//  2. Every request must carry a synchronizer token from [CSRFToken]: in
//     the X-CSRF-Token header, or else in the csrf_token field of an
//     application/x-www-form-urlencoded or multipart/form-data body. The
//     token is masked with fresh randomness on every call (so compression
//     side channels such as BREACH cannot recover it) and compared in
//     constant time.
//
// With a session cookie the token is the session's, derived from the
// session's CSRF secret. Renewal replaces the secret; tokens of other
// sessions never match.
//
// Without a session (login, sign-up and password-reset forms) it is an
// anonymous token, valid only with the random secret in the HttpOnly
// "__Host-latch-csrf" cookie that [CSRFToken] sets. A made-up token, or one
// minted for another visitor's cookie, is refused, so another site cannot
// sign a visitor into an account of its choosing even where the origin
// check cannot tell (a browser that sends neither header). Login expires
// the cookie: from then on only the session's token works. A request whose
// session cookie no longer works (revoked, expired) is anonymous too; its
// rejection carries the reason in CSRFError.Cause, so the error page can
// say "you were signed out".
//
// Requests with "Authorization: Bearer" or "DPoP" need no token: browsers
// never attach those on their own (Basic credentials they do, so those
// requests still need one). Server-to-server endpoints such as webhooks can
// be exempted from the anonymous token with Config.AnonymousCSRFExempt;
// requests with a session still need the session's token there.
//
// A rejection is answered 403 through Config.ErrorHandler with a *[CSRFError]
// and reported as a latch.EventCSRFRejected event.
//
// To read the form field the middleware parses the body as the handler
// would (ParseForm or ParseMultipartForm), within Config.MaxFormSize (413
// beyond it); the parsed values stay in r.PostForm and r.MultipartForm for
// the handler. Requests that send the header are not read, which is what
// handlers that stream large uploads should do.
//
// # Login, logout, renewal
//
// [Sessions.Login] creates the session after your code has authenticated
// the user, and revokes any session the request carried, so a token planted
// before login (session fixation) is never promoted. [Sessions.Logout]
// revokes the session (its cookie, refresh token and access tokens stop
// working), deletes the cookie with the same attributes it was set with, and
// sends Clear-Site-Data: "cookies". [Sessions.Renew] replaces every secret
// of the session after a privilege change, and [Sessions.RevokeOthers] signs
// the user out of every other device. All of them must be called before the
// response is written.
//
// # Idle timeout
//
// A session ends after Config.IdleTimeout of the Manager without use.
// [IdleTimeLeft] and [SessionInfo] (JSON-ready) give a page the deadline so
// it can warn the user and ask them to sign in again before it runs out.
//
// # Failure
//
// When the store fails, the middleware answers 503 (ErrUnavailable): a
// request is never treated as authenticated on an error. An invalid cookie
// simply leaves the request unauthenticated; [Sessions.RequireSession]
// answers such requests 401. No error, log line or event ever contains a
// token.
package latchhttp
