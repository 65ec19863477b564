package latchhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
)

// DefaultCookieName is the session cookie's name unless Config.CookieName
// says otherwise. The __Host- prefix makes browsers refuse the cookie unless
// it is Secure, has Path=/ and no Domain, so a sibling subdomain or a
// plain-HTTP page cannot plant or overwrite it.
const DefaultCookieName = "__Host-latch"

// AnonCookieSuffix makes the anonymous CSRF cookie's name from the session
// cookie's: "__Host-latch" + "-csrf" by default. The cookie holds a random
// secret for visitors without a session (see [CSRFToken]); it shares the
// session cookie's Path, Domain, Secure and SameSite, and is HttpOnly.
const AnonCookieSuffix = "-csrf"

// AnonCSRFMaxAge is the anonymous CSRF cookie's Max-Age. Every response
// that hands out an anonymous token sets the cookie again with this
// Max-Age, so a login form stays usable this long after it was rendered.
const AnonCSRFMaxAge = 2 * time.Hour

// Default limits for reading the csrf_token form field.
const (
	// DefaultMaxFormSize caps an application/x-www-form-urlencoded body
	// the middleware parses to find csrf_token: net/http's own limit for
	// ParseForm, so parsing in the middleware refuses nothing a handler
	// calling ParseForm would have accepted.
	DefaultMaxFormSize = 10 << 20
	// DefaultMaxMultipartMemory is the part of a multipart/form-data body
	// kept in memory while looking for csrf_token (the rest goes to
	// temporary files, removed when the request ends), as in
	// net/http.Request.FormFile.
	DefaultMaxMultipartMemory = 32 << 20
)

// TokenVerifier verifies access tokens; *accesstoken.Verifier implements
// it. Errors must never contain the token.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (accesstoken.Claims, error)
}

// Config configures the HTTP layer. The zero value is the secure default:
// a "__Host-latch" cookie that is Secure, HttpOnly, SameSite=Lax, Path=/,
// without Domain, lasting until the session's absolute deadline; cookie
// sessions only (no Bearer tokens); client IPs from the connection.
//
// Settings that would weaken the cookie are refused by [New] with a
// *ConfigError saying why; there is no silent fallback.
type Config struct {
	// CookieName is the session cookie's name (default "__Host-latch").
	// A "__Host-" name requires Path=/ and no Domain; a "__Host-" or
	// "__Secure-" name requires a Secure cookie.
	CookieName string
	// CookieDomain, if set, sends the cookie to subdomains of that domain
	// too. Leave it empty (host-only) unless you need that: every
	// subdomain then receives the session.
	CookieDomain string
	// CookiePath is the cookie's Path (default "/").
	CookiePath string
	// SameSite is the cookie's SameSite attribute (default Lax: the cookie
	// is sent on top-level navigations from other sites, not on their
	// subrequests or form POSTs). Strict is allowed; None requires Secure.
	SameSite http.SameSite

	// InsecureCookieForDevelopmentOnly drops the Secure attribute so the
	// cookie travels over plain HTTP. NEVER set it in production: anyone on
	// the network path can then read the session.
	//
	// You rarely need it: browsers treat http://localhost (and 127.0.0.1)
	// as a secure context, so Chromium and Firefox keep the default
	// Secure "__Host-latch" cookie over plain HTTP on localhost. It is for
	// browsers or hosts that do not (Safari, a phone on the LAN reaching
	// http://192.168.x.y). It requires a CookieName without the __Host- or
	// __Secure- prefix.
	//
	// Behind a TLS-terminating proxy (a load balancer, nginx, Caddy) leave
	// it false: the browser talks HTTPS to the proxy, so a Secure cookie is
	// right even though the application itself sees plain HTTP.
	InsecureCookieForDevelopmentOnly bool

	// AccessTokens, if set, authenticates requests carrying
	// "Authorization: Bearer <access token>": the token is verified
	// (usually by an *accesstoken.Verifier) and its session loaded with
	// Manager.Get, so revoking the session ends bearer access at once.
	// Such requests never use the cookie and need no CSRF token. If nil,
	// the Authorization header is ignored.
	AccessTokens TokenVerifier

	// DPoP, if set, also accepts "Authorization: DPoP <access token>"
	// with a "DPoP" proof header (RFC 9449 §7): the proof must be by the
	// key the token is bound to (cnf.jkt), for the request's method and
	// URL, with the token's ath. A bound token sent as Bearer is refused
	// whether or not DPoP is set. Requires AccessTokens. With the
	// verifier's NonceKey set, a proof without its current nonce is
	// refused (use_dpop_nonce), and every answer to a request with a proof
	// carries the current nonce in DPoP-Nonce.
	DPoP *dpop.Verifier
	// DPoPURL returns the URL a client addressed (htu), for proofs;
	// default: https (http without TLS) + Host + path. Set it behind a
	// proxy that changes the scheme, host or path.
	DPoPURL func(*http.Request) string

	// TrustedOrigins are origins ("https://app.example.com") other than
	// the request's own that may send cookie-authenticated unsafe requests
	// (net/http.CrossOriginProtection.AddTrustedOrigin).
	TrustedOrigins []string

	// CrossOriginBypass lists net/http.ServeMux patterns ("POST
	// /auth/callback") of endpoints that receive cross-site form posts by
	// design, such as an OpenID Connect form_post or SAML POST-binding
	// callback: the cross-origin check (which otherwise applies to every
	// unsafe request, with or without a session) skips them
	// (CrossOriginProtection.AddInsecureBypassPattern), and so does the
	// anonymous CSRF token (a cross-site post carries no SameSite cookie,
	// so it cannot have one; such endpoints must check their own state or
	// signature). Requests that carry a session cookie still need the
	// session's CSRF token. Keep the list short: each entry re-opens that
	// endpoint to cross-site posts.
	CrossOriginBypass []string

	// AnonymousCSRFExempt lists net/http.ServeMux patterns ("POST
	// /webhooks/stripe") of endpoints whose unsafe requests without a
	// session need no anonymous CSRF token: webhooks and other
	// server-to-server calls that authenticate themselves (a signature, an
	// API key in a header other than a Bearer token). The cross-origin
	// check still applies (server-to-server calls send neither Origin nor
	// Sec-Fetch-Site, so they pass it), and a request that carries a
	// session cookie still needs the session's CSRF token. Never list a
	// login, sign-up or password-reset form: that re-opens login CSRF.
	AnonymousCSRFExempt []string

	// ClientIPHeader names a header set by a reverse proxy that carries the
	// client's address ("X-Forwarded-For", "X-Real-IP", …). It is read only
	// when the connection comes from one of TrustedProxies, which is then
	// required; for a list header the rightmost address that is not a
	// trusted proxy is taken. By default the client IP is the connection's
	// remote address. The IP is metadata (device lists, audit events),
	// never an authentication factor.
	ClientIPHeader string
	// TrustedProxies are the networks of the reverse proxies allowed to
	// set ClientIPHeader.
	TrustedProxies []netip.Prefix

	// MaxFormSize caps a form body (url-encoded or multipart) the
	// middleware reads to find the csrf_token field (default
	// DefaultMaxFormSize). A larger body is answered 413. An
	// http.MaxBytesReader installed before the middleware still applies;
	// the smaller limit wins. Requests that send the X-CSRF-Token header
	// are not read at all, so routes taking large uploads should send the
	// header (or raise this limit).
	MaxFormSize int64
	// MaxMultipartMemory is passed to ParseMultipartForm when the
	// csrf_token field is read from a multipart body (default
	// DefaultMaxMultipartMemory).
	MaxMultipartMemory int64

	// ErrorHandler answers requests the layer refuses: err matches
	// ErrUnauthenticated (401, from RequireSession),
	// latch.ErrInsufficientAuth (401, from RequireRecentAuth), ErrCSRF (403),
	// ErrUnavailable (503: the store failed, the request is not
	// authenticated) or ErrBadRequest (400 or 413, an unreadable form).
	// Use [StatusCode] to map it. Default: [DefaultErrorHandler].
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// Reauthenticate answers a cookie-authenticated request that
	// [Sessions.RequireRecentAuth] refused because the user signed in too
	// long ago (or with another ACR): typically a page asking for the
	// password again, whose form re-authenticates, calls [Sessions.Renew]
	// with the new AuthTime and AMR, and then does what the request asked.
	// need is what the action demands. If nil, such requests get
	// ErrorHandler with an error matching latch.ErrInsufficientAuth (401).
	// Bearer requests always get 401 with the RFC 9470 WWW-Authenticate
	// challenge instead: an API client re-authenticates through its own
	// authorization server, not through a page.
	Reauthenticate func(w http.ResponseWriter, r *http.Request, need latch.AuthRequirement)
}

// ConfigError is a setting New refuses, with the reason.
type ConfigError struct {
	Field  string // the Config field, e.g. "SameSite"
	Reason string
}

func (e *ConfigError) Error() string {
	return "latchhttp: Config." + e.Field + ": " + e.Reason
}

// Is makes every ConfigError match ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// Sessions is the HTTP layer over a latch.Manager: the middleware, the
// RequireSession guard and the Login, Logout, Renew and RevokeOthers
// helpers. Create it with New; it is safe for concurrent use.
type Sessions struct {
	m   *latch.Manager
	now func() time.Time

	name     string
	domain   string
	path     string
	sameSite http.SameSite
	secure   bool

	// anonName is the anonymous CSRF cookie's name: name + "-csrf".
	anonName string
	rand     io.Reader

	bearer     TokenVerifier
	dpop       *dpop.Verifier
	dpopURL    func(*http.Request) string
	cop        *http.CrossOriginProtection
	anonExempt *http.ServeMux // nil: no endpoint is exempt
	ipHeader   string
	proxies    []netip.Prefix
	maxForm    int64
	maxMemory  int64
	errHandler func(http.ResponseWriter, *http.Request, error)
	reauth     func(http.ResponseWriter, *http.Request, latch.AuthRequirement)
}

// New checks cfg and returns the HTTP layer for m. Incompatible or
// insecure settings are refused with a *ConfigError (matching ErrConfig).
func New(m *latch.Manager, cfg Config) (*Sessions, error) {
	if m == nil {
		return nil, &ConfigError{"Manager", "a *latch.Manager is required"}
	}
	s := &Sessions{
		m:          m,
		now:        m.Now,
		name:       cfg.CookieName,
		domain:     cfg.CookieDomain,
		path:       cfg.CookiePath,
		sameSite:   cfg.SameSite,
		secure:     !cfg.InsecureCookieForDevelopmentOnly,
		bearer:     cfg.AccessTokens,
		dpop:       cfg.DPoP,
		dpopURL:    cfg.DPoPURL,
		cop:        http.NewCrossOriginProtection(),
		ipHeader:   http.CanonicalHeaderKey(strings.TrimSpace(cfg.ClientIPHeader)),
		proxies:    cfg.TrustedProxies,
		maxForm:    cfg.MaxFormSize,
		maxMemory:  cfg.MaxMultipartMemory,
		errHandler: cfg.ErrorHandler,
		reauth:     cfg.Reauthenticate,
		rand:       m.Config().Rand,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.name == "" {
		s.name = DefaultCookieName
	}
	s.anonName = s.name + AnonCookieSuffix
	if s.path == "" {
		s.path = "/"
	}
	if s.sameSite == 0 || s.sameSite == http.SameSiteDefaultMode {
		s.sameSite = http.SameSiteLaxMode
	}
	if s.errHandler == nil {
		s.errHandler = DefaultErrorHandler
	}
	switch {
	case s.maxForm == 0:
		s.maxForm = DefaultMaxFormSize
	case s.maxForm < 0:
		return nil, &ConfigError{"MaxFormSize", "must not be negative"}
	}
	switch {
	case s.maxMemory == 0:
		s.maxMemory = DefaultMaxMultipartMemory
	case s.maxMemory < 0:
		return nil, &ConfigError{"MaxMultipartMemory", "must not be negative"}
	}
	if err := s.checkCookie(); err != nil {
		return nil, err
	}
	for _, o := range cfg.TrustedOrigins {
		if err := s.cop.AddTrustedOrigin(o); err != nil {
			return nil, &ConfigError{"TrustedOrigins", "not an origin of the form scheme://host[:port]: " + err.Error()}
		}
	}
	for _, p := range cfg.CrossOriginBypass {
		if err := addPattern("CrossOriginBypass", p, s.cop.AddInsecureBypassPattern); err != nil {
			return nil, err
		}
	}
	if err := s.addAnonExempt(cfg); err != nil {
		return nil, err
	}
	if s.ipHeader != "" {
		if len(s.proxies) == 0 {
			return nil, &ConfigError{"ClientIPHeader", "requires TrustedProxies: without them any client could claim any address by sending the header"}
		}
		if s.ipHeader == "Forwarded" {
			return nil, &ConfigError{"ClientIPHeader", `the RFC 7239 Forwarded header is not supported; use "X-Forwarded-For" or "X-Real-IP"`}
		}
		if !validHeaderName(s.ipHeader) {
			return nil, &ConfigError{"ClientIPHeader", "not a valid header name"}
		}
		for _, p := range s.proxies {
			if !p.IsValid() {
				return nil, &ConfigError{"TrustedProxies", "contains an invalid prefix"}
			}
		}
	}
	return s, nil
}

func (s *Sessions) checkCookie() error {
	name := s.name
	if !validHeaderName(name) {
		return &ConfigError{"CookieName", "not a valid cookie name (RFC 6265 token)"}
	}
	host := hasPrefixFold(name, "__Host-")
	if (host || hasPrefixFold(name, "__Secure-")) && !s.secure {
		return &ConfigError{"InsecureCookieForDevelopmentOnly", "browsers drop " + name[:strings.IndexByte(name[2:], '-')+3] +
			" cookies that are not Secure; set CookieName to a name without the prefix (e.g. \"latch\") for plain-HTTP development, " +
			"or leave this off: http://localhost is a secure context, so Secure cookies already work there in Chromium and Firefox"}
	}
	if host && s.domain != "" {
		return &ConfigError{"CookieDomain", "a __Host- cookie must not have a Domain; use a __Secure- or unprefixed CookieName to share the cookie with subdomains"}
	}
	if host && s.path != "/" {
		return &ConfigError{"CookiePath", "a __Host- cookie must have Path=/"}
	}
	if s.path[0] != '/' || strings.ContainsAny(s.path, ";\x00\r\n") || !printableASCII(s.path) {
		return &ConfigError{"CookiePath", "must start with / and contain only printable ASCII without ';'"}
	}
	if s.domain != "" {
		d := strings.TrimPrefix(s.domain, ".")
		if d == "" || !validDomain(d) {
			return &ConfigError{"CookieDomain", "not a valid domain name"}
		}
	}
	switch s.sameSite {
	case http.SameSiteLaxMode, http.SameSiteStrictMode:
	case http.SameSiteNoneMode:
		if !s.secure {
			return &ConfigError{"SameSite", "SameSite=None requires a Secure cookie (browsers reject it otherwise)"}
		}
	default:
		return &ConfigError{"SameSite", "unknown SameSite mode"}
	}
	return nil
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrConfig: New refused a setting; the error is a *ConfigError.
	ErrConfig = errors.New("latchhttp: invalid configuration")
	// ErrUnauthenticated: the request carries no valid session (401).
	ErrUnauthenticated = errors.New("latchhttp: not authenticated")
	// ErrCSRF: an unsafe request failed the CSRF checks (403): it came
	// cross-origin, or lacked the CSRF token of its session (or, without a
	// session, of its anonymous CSRF cookie). The concrete error is a *CSRFError.
	ErrCSRF = errors.New("latchhttp: CSRF check failed")
	// ErrUnavailable: the session store failed; the request is not
	// authenticated (503). It is latch.ErrUnavailable.
	ErrUnavailable = latch.ErrUnavailable
	// ErrBadRequest: the form carrying csrf_token could not be read (400,
	// or 413 when it is larger than Config.MaxFormSize).
	ErrBadRequest = errors.New("latchhttp: unreadable request body")
	// ErrHeadersWritten: a helper that sets the cookie was called after the
	// response headers were sent.
	ErrHeadersWritten = errors.New("latchhttp: response headers already written; call Login, Logout and Renew before writing the response")
)

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// validHeaderName reports whether s is an RFC 7230 token, which is also
// what RFC 6265 allows as a cookie name.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func validDomain(d string) bool {
	if len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// addPattern registers a ServeMux pattern with add, turning ServeMux's
// panic on a malformed or conflicting pattern into a ConfigError for field.
func addPattern(field, pattern string, add func(string)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &ConfigError{field, fmt.Sprintf("invalid pattern %q: %v", pattern, p)}
		}
	}()
	add(pattern)
	return nil
}

// addAnonExempt collects the endpoints that need no anonymous CSRF token:
// AnonymousCSRFExempt and CrossOriginBypass.
func (s *Sessions) addAnonExempt(cfg Config) error {
	if len(cfg.AnonymousCSRFExempt)+len(cfg.CrossOriginBypass) == 0 {
		return nil
	}
	s.anonExempt = http.NewServeMux()
	seen := map[string]bool{}
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"AnonymousCSRFExempt", cfg.AnonymousCSRFExempt}, {"CrossOriginBypass", cfg.CrossOriginBypass}} {
		for _, p := range list.patterns {
			if seen[p] {
				continue
			}
			seen[p] = true
			if err := addPattern(list.field, p, func(p string) { s.anonExempt.Handle(p, http.NotFoundHandler()) }); err != nil {
				return err
			}
		}
	}
	return nil
}
