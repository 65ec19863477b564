// Package latchclient is a Go client for the HTTP API of `latch serve`, for
// services that use a remote latch instead of embedding the Manager.
//
// Most users need [New], [Client.Create] at login and [Client.Verify] on
// every request; [Client.Revoke] and [Client.RevokeSubject] end sessions,
// [Client.Refresh] rotates a refresh token.
//
// # Cached validation
//
// With Config.Cache set, Verify answers a hot session from memory, under the
// rules of docs/protocol.md section 4, all of them:
//
//   - entries are keyed by SHA-256 of the token, never the token, and hold
//     the verify answer (session view and CSRF key) for at most the
//     answer's Cache-Control max-age (the server's touch interval), never
//     past the session's idle or absolute deadline, checked on every use;
//   - the client keeps one GET /v1/events stream open, and the cache is
//     trusted only while something arrived on it within the staleness bound
//     (Config.StalenessBound, default 250 ms): past it, every entry is
//     dropped and Verify asks the server, so a client cut off from latch
//     accepts a revoked session for at most that bound, and one behind a
//     replica cut off from its store (which stops heartbeats 150 ms after
//     its store link was last proven) for at most the two added;
//   - an entry is stored only if the stream was live, on the same
//     connection, when the request was sent and when its answer arrived;
//   - revoked, renewed and refresh-reuse events drop their session,
//     subject.revoked drops the subject's sessions but the one it spared,
//     reset and every reconnect drop everything;
//   - failures are never cached: a 401 is returned as it came, a 503, a
//     timeout or a network error is [ErrUnavailable] (fail closed).
//
// # Offline access tokens
//
// A service that verifies access tokens offline (JWKS) calls
// [Client.AccessTokenRevoked] after the signature check: it refuses tokens
// of sessions the stream reported revoked, renewed or subject-revoked at or
// after the token's iat, and answers ErrUnavailable (verify online) while
// the stream cannot vouch for that.
//
// # DPoP and step-up
//
// A session bound to a client's DPoP key (RFC 9449; NewSession.DPoP or
// DPoPJKT) refreshes with a proof: relayed from the client
// (RefreshRequest.DPoP), or signed here by a [dpop.Prover] when this
// program holds the key, retried once when latch asks for its nonce
// (ErrUseDPoPNonce). [Client.VerifyAccessToken] relays the proof of a
// bound access token. A step-up refusal (RFC 9470) is an
// [*InsufficientAuthError] naming the max_age and acr_values demanded.
// Backends relaying proofs take them from the request with [RelayedProof]
// and pass latch's DPoP-Nonce and, on a refusal, its challenge on to their
// client with [PassDPoP] (docs/protocol.md, section 5).
//
// # Security model
//
// The API key and tokens travel only in headers and JSON bodies, never in a
// URL; no error returned by this package contains a token or the key.
package latchclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Errors the client returns, matched with errors.Is. An *Error from the
// server matches the sentinel of its problem code.
var (
	ErrInvalidToken = errors.New("latchclient: invalid token")
	ErrRevoked      = errors.New("latchclient: session revoked")
	ErrExpired      = errors.New("latchclient: session expired")
	ErrNotFound     = errors.New("latchclient: not found")
	ErrUnauthorized = errors.New("latchclient: the API key was refused")
	// ErrUnavailable: latch or its store could not be reached, or answered
	// something unusable. Treat it as "not authenticated".
	ErrUnavailable = errors.New("latchclient: latch unavailable")
	// ErrInsufficientAuth: the session is valid but its sign-in is older,
	// or of another ACR, than VerifyFor demanded (RFC 9470). Have the user
	// authenticate again, then renew the session with the new auth_time.
	ErrInsufficientAuth = errors.New("latchclient: insufficient user authentication")
)

// Error is a problem document the server answered with.
type Error struct {
	Status int
	Code   string // the problem's stable code, e.g. "revoked"
	Detail string
	// Challenge is the answer's WWW-Authenticate, for DPoP and step-up
	// refusals: a backend relaying its client's proof answers the client
	// with it as is (docs/protocol.md, section 5).
	Challenge string
	// DPoPNonce is the answer's DPoP-Nonce (latch serve --dpop-nonce): the
	// nonce the next proof must carry.
	DPoPNonce string
}

func (e *Error) Error() string {
	return fmt.Sprintf("latchclient: %d %s: %s", e.Status, e.Code, e.Detail)
}

// Is matches the sentinel of the problem code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalidToken:
		return e.Code == "invalid_token"
	case ErrRevoked:
		return e.Code == "revoked" || e.Code == "refresh_reuse"
	case ErrExpired:
		return e.Code == "expired"
	case ErrNotFound:
		return e.Code == "not_found"
	case ErrUnauthorized:
		return e.Code == "unauthorized"
	case ErrInsufficientAuth:
		return e.Code == "insufficient_user_authentication"
	case ErrInvalidDPoPProof:
		return e.Code == "invalid_dpop_proof" || e.Code == "use_dpop_nonce"
	case ErrUseDPoPNonce:
		return e.Code == "use_dpop_nonce"
	case ErrUnavailable:
		return e.Status >= 500
	}
	return false
}

// Config configures a Client. BaseURL and APIKey are required.
type Config struct {
	// BaseURL of latch serve, e.g. "https://latch.internal:8080".
	BaseURL string
	// APIKey authenticates the back-channel calls.
	APIKey string
	// HTTPClient sends the calls (default: a client with a 10 s timeout).
	// The event stream uses its Transport without the timeout.
	HTTPClient *http.Client

	// Cache turns on cached validation (see the package documentation).
	Cache bool
	// StalenessBound is how long the cache stays trusted after the last
	// sign of life on the event stream (default 250 ms).
	StalenessBound time.Duration
	// MaxEntries caps the cache (default 100,000).
	MaxEntries int
	// OnEvent, if set, receives every event of the stream (after the cache
	// acted on it). It runs on the stream's goroutine: keep it quick.
	OnEvent func(Event)
	// AccessTokenTTL is the server's access-token lifetime (default 10 min):
	// how long AccessTokenRevoked remembers a revocation.
	AccessTokenTTL time.Duration
	// PublicURL is latch's URL as its clients reach it (latch serve
	// --public-url, else its issuer), the base of the htu of proofs a
	// Prover makes for Refresh (default BaseURL).
	PublicURL string
}

// Defaults of Config.
const (
	DefaultStalenessBound = 250 * time.Millisecond
	DefaultMaxEntries     = 100_000
)

// Client talks to latch serve. It is safe for concurrent use; call Close to
// stop its event stream.
type Client struct {
	base   string
	public string   // base of the htu of proofs (Config.PublicURL)
	nonces nonceBox // latch's newest DPoP-Nonce, for proofs of a Prover
	key    string
	http   *http.Client
	stream *http.Client
	cache  *cache // nil without Config.Cache
	revs   *revocations
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and returns a Client; with Config.Cache it starts the
// event stream.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("latchclient: Config.BaseURL must be an http:// or https:// URL")
	}
	if cfg.APIKey == "" {
		return nil, errors.New("latchclient: Config.APIKey is required")
	}
	c := &Client{base: strings.TrimRight(cfg.BaseURL, "/"), key: cfg.APIKey, http: cfg.HTTPClient}
	c.public = c.base
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("latchclient: Config.PublicURL must be an http:// or https:// URL")
		}
		c.public = strings.TrimRight(cfg.PublicURL, "/")
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	sc := *c.http
	sc.Timeout = 0 // the stream never ends by itself; staleness is watched instead
	c.stream = &sc
	if cfg.Cache {
		if cfg.StalenessBound <= 0 {
			cfg.StalenessBound = DefaultStalenessBound
		}
		if cfg.MaxEntries <= 0 {
			cfg.MaxEntries = DefaultMaxEntries
		}
		if cfg.AccessTokenTTL <= 0 {
			cfg.AccessTokenTTL = 10 * time.Minute
		}
		c.revs = newRevocations(cfg.AccessTokenTTL)
		c.cache = newCache(cfg.StalenessBound, cfg.MaxEntries, cfg.OnEvent)
		c.cache.revs = c.revs
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel, c.done = cancel, make(chan struct{})
		go func() {
			defer close(c.done)
			c.runStream(ctx)
		}()
	}
	return c, nil
}

// Close stops the event stream. The client still answers online.
func (c *Client) Close() error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	return nil
}

// Session is the session view of the API.
type Session struct {
	ID            string          `json:"id"`
	Subject       string          `json:"subject"`
	CreatedAt     time.Time       `json:"created_at"`
	AuthTime      time.Time       `json:"auth_time"`
	ACR           string          `json:"acr,omitempty"` // how the user authenticated at AuthTime (RFC 9470)
	AMR           []string        `json:"amr,omitempty"` // with which methods (RFC 8176), e.g. ["pwd"]
	LastSeenAt    time.Time       `json:"last_seen_at"`
	IdleExpiresAt time.Time       `json:"idle_expires_at"`
	ExpiresAt     time.Time       `json:"expires_at"`
	IP            string          `json:"ip,omitempty"`
	UserAgent     string          `json:"user_agent,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	Claims        json.RawMessage `json:"claims,omitempty"`
	Version       uint64          `json:"version"`
}

// NewSession is the body of Create.
type NewSession struct {
	Subject             string          `json:"subject"`
	Data                json.RawMessage `json:"data,omitempty"`
	Claims              json.RawMessage `json:"claims,omitempty"`
	IP                  string          `json:"ip,omitempty"`
	UserAgent           string          `json:"user_agent,omitempty"`
	ReplaceSessionToken string          `json:"replace_session_token,omitempty"`
	// How and when the user authenticated (RFC 9470); AuthTime nil: now.
	AuthTime *time.Time `json:"auth_time,omitempty"`
	ACR      string     `json:"acr,omitempty"`
	AMR      []string   `json:"amr,omitempty"`
	// Bind the session to a DPoP key (RFC 9449), with at most one of: the
	// proof the client sent with its sign-in request, relayed, or the key's
	// thumbprint (dpop.Prover.JKT, or after checking the proof yourself).
	DPoP    *DPoPProof `json:"dpop,omitempty"`
	DPoPJKT string     `json:"dpop_jkt,omitempty"`
}

// Created is the answer of Create: the tokens are the end user's secrets.
type Created struct {
	Session      Session `json:"session"`
	SessionToken string  `json:"session_token"`
	RefreshToken string  `json:"refresh_token"`
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    int     `json:"expires_in"`
	// DPoPNonce is latch's current DPoP nonce, when it demands them and
	// the create relayed a proof: pass it on to the client.
	DPoPNonce string `json:"-"`
}

// Verified is the answer of Verify.
type Verified struct {
	Session Session
	// CSRFToken is a fresh masking of the session's CSRF key, for forms.
	CSRFToken string
	// Cached reports that the answer came from the cache.
	Cached bool
	// DPoPNonce is latch's current DPoP nonce, after a verify that relayed
	// a proof (latch serve --dpop-nonce): pass it on to the client.
	DPoPNonce string
	csrfKey   []byte
}

// CheckCSRF reports whether tok is a valid CSRF token of the session
// (docs/protocol.md section 2), in constant time.
func (v *Verified) CheckCSRF(tok string) bool { return checkCSRF(v.csrfKey, tok) }

// Create starts a session for subject after the service authenticated the
// user (POST /v1/sessions).
func (c *Client) Create(ctx context.Context, s NewSession) (*Created, error) {
	var out Created
	h, err := c.do(ctx, "POST", "/v1/sessions", s, &out)
	if err != nil {
		return nil, err
	}
	out.DPoPNonce = h.Get("DPoP-Nonce")
	return &out, nil
}

// Revoke ends a session (DELETE /v1/sessions/{id}).
func (c *Client) Revoke(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(id), nil, nil)
	return err
}

// RevokeSubject ends every session of subject but except ("" for none) and
// returns how many it revoked.
func (c *Client) RevokeSubject(ctx context.Context, subject, except string) (int, error) {
	p := "/v1/subjects/" + url.PathEscape(subject) + "/sessions"
	if except != "" {
		p += "?except=" + url.QueryEscape(except)
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	_, err := c.do(ctx, "DELETE", p, nil, &out)
	return out.Revoked, err
}

// Verify validates a session token: from the cache when allowed (see the
// package documentation), else with POST /v1/sessions/verify.
func (c *Client) Verify(ctx context.Context, sessionToken string) (*Verified, error) {
	if c.cache == nil {
		v, _, err := c.verifyOnline(ctx, sessionToken)
		return v, err
	}
	return c.cache.verify(ctx, sessionToken, c.verifyOnline)
}

// VerifyFor is Verify for a sensitive action (RFC 9470 step-up): the
// session's sign-in must be at most maxAge old (if positive; whole seconds,
// at least one) and, if acrValues are given, its ACR one of them. A session
// that does not meet it fails with an *InsufficientAuthError (matching
// ErrInsufficientAuth, naming what was demanded) and records no activity: an online verify sends the requirement to latch,
// which refuses without touching the session; a cached answer is checked
// here against the cached session (renewals invalidate the cache, so its
// auth_time and acr are current).
func (c *Client) VerifyFor(ctx context.Context, sessionToken string, maxAge time.Duration, acrValues ...string) (*Verified, error) {
	need := requirement(maxAge, acrValues)
	online := func(ctx context.Context, tok string) (*Verified, time.Duration, error) {
		v, age, err := c.verifyOnlineFor(ctx, tok, need)
		return v, age, stepUp(err, need)
	}
	var v *Verified
	var err error
	if c.cache == nil {
		v, _, err = online(ctx, sessionToken)
	} else {
		v, err = c.cache.verify(ctx, sessionToken, online)
	}
	if err != nil {
		return nil, err
	}
	if v.Cached {
		if err := need.check(&v.Session, time.Now()); err != nil {
			return nil, err
		}
	}
	return v, nil
}

type verifyRequirement struct {
	maxAge    int64 // seconds; 0: none
	acrValues []string
}

// check is the server's rule applied to a cached session.
func (r verifyRequirement) check(s *Session, now time.Time) error {
	old := r.maxAge > 0 && now.Sub(s.AuthTime) > time.Duration(r.maxAge)*time.Second
	wrong := len(r.acrValues) > 0 && (s.ACR == "" || !slices.Contains(r.acrValues, s.ACR))
	if old || wrong {
		return insufficient(&Error{Status: http.StatusUnauthorized, Code: "insufficient_user_authentication",
			Detail: "the session's sign-in is older or of another level than this action demands (checked against the cached session)"}, r)
	}
	return nil
}

// verifyOnline asks the server; maxAge is the answer's Cache-Control
// max-age (-1: not cacheable).
func (c *Client) verifyOnline(ctx context.Context, tok string) (*Verified, time.Duration, error) {
	return c.verifyOnlineFor(ctx, tok, verifyRequirement{})
}

func (c *Client) verifyOnlineFor(ctx context.Context, tok string, need verifyRequirement) (*Verified, time.Duration, error) {
	var out struct {
		Session   Session `json:"session"`
		CSRFToken string  `json:"csrf_token"`
	}
	in := struct {
		SessionToken string   `json:"session_token"`
		MaxAge       int64    `json:"max_age,omitempty"`
		ACRValues    []string `json:"acr_values,omitempty"`
	}{tok, need.maxAge, need.acrValues}
	h, err := c.do(ctx, "POST", "/v1/sessions/verify", in, &out)
	if err != nil {
		return nil, -1, err
	}
	v := &Verified{Session: out.Session, CSRFToken: out.CSRFToken, csrfKey: unmask(out.CSRFToken)}
	return v, maxAge(h.Get("Cache-Control")), nil
}

// maxAge parses "private, max-age=N"; -1 when absent or not private.
func maxAge(cc string) time.Duration {
	private, age := false, time.Duration(-1)
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		switch {
		case d == "private":
			private = true
		case d == "no-store", d == "no-cache":
			return -1
		case strings.HasPrefix(d, "max-age="):
			var n int64
			if _, err := fmt.Sscan(d[len("max-age="):], &n); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	if !private {
		return -1
	}
	return age
}

// do sends a back-channel call and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	return c.call(ctx, method, path, in, out, "")
}

// call is do, with a DPoP proof header unless proof is "".
func (c *Client) call(ctx context.Context, method, path string, in, out any, proof string) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("latchclient: encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("latchclient: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL holds no secret, but keep the message to the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrUnavailable, err)
	}
	if resp.StatusCode >= 300 {
		p := &Error{Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate"), DPoPNonce: resp.Header.Get("DPoP-Nonce")}
		var doc struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &doc) == nil {
			p.Code, p.Detail = doc.Code, doc.Detail
		}
		return nil, p
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%w: malformed answer: %w", ErrUnavailable, err)
		}
	}
	return resp.Header, nil
}
