// Package server implements `latch serve`: latch's session API over HTTP
// for services written in any language, as specified by the "Server
// contract" of the design and by the OpenAPI document in package api.
//
// A Server is built from Options with [New]; [Server.Handler] is the whole
// HTTP surface (back-channel API, public API, JWKS, operations endpoints),
// [Server.Run] runs the background loops (expiry sweeper, keyring
// maintenance) and [Serve] runs an http.Server with the right timeouts
// until its context ends, then drains in-flight requests.
//
// # Security model
//
//   - Back-channel calls need the API key as a Bearer credential. The key is
//     compared in constant time (through SHA-256, so its length does not
//     leak either); anything else is 401 unauthorized.
//   - No token, API key or request body is ever written to a log line or an
//     error detail: the request log records method, route, path, status,
//     duration and client address only (never the query string), and
//     problem details are fixed strings.
//   - Fail closed: a store failure is 503 store_unavailable, never a session.
//   - Bodies are JSON objects of at most 64 KiB with no unknown members.
//   - Cookie-authenticated logout needs a same-origin request and the
//     session's CSRF token; Bearer-authenticated calls need neither.
package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/ratelimit"
	"github.com/latch-sessions/latch/store"
)

// MinAPIKeyLen is the shortest API key the server accepts.
const MinAPIKeyLen = 32

// DefaultCookieName is the session cookie read by whoami and logout.
const DefaultCookieName = "__Host-latch"

// ErrWeakAPIKey reports an API key shorter than MinAPIKeyLen.
var ErrWeakAPIKey = fmt.Errorf("server: the API key must be at least %d characters (generate one with: openssl rand -base64 32)", MinAPIKeyLen)

// Options configure a Server. Store and APIKey are required; zero values
// of the rest mean the documented defaults.
type Options struct {
	// Store keeps the sessions; if it implements store.KeyStore, the
	// signing keyring is kept there too (sealed under KEK).
	Store store.Store
	// APIKey authenticates back-channel calls; at least MinAPIKeyLen
	// characters.
	APIKey string
	// KEK is the 32-byte key-encryption key of the keyring. Required when
	// Store implements store.KeyStore.
	KEK []byte

	// Issuer, if set, is the iss of access tokens. Set it on every replica
	// alike, or leave it empty on all of them.
	Issuer string
	// DefaultIssuer is the iss recorded in the store at the first start
	// when Issuer is empty (default "latch"). From then on every start and
	// every replica on the same store uses the recorded one, so tokens stay
	// valid across restarts and address changes. Stores that cannot keep
	// the keyring record nothing: the issuer is DefaultIssuer each start.
	DefaultIssuer string
	// PublicURL is latch's own URL as its clients reach it (through any
	// proxy), e.g. https://latch.example: the base of the htu of DPoP
	// proofs sent to latch directly. Default: the issuer if it is an
	// http(s) URL, else the scheme and Host of each request.
	PublicURL string
	// DPoPNonce turns DPoP server nonces on (RFC 9449 §8): every proof must
	// carry a nonce latch issued in the last one to two minutes, and every
	// answer to a request with a proof carries the current one in
	// DPoP-Nonce (docs/protocol.md, section 5). Nonces are an HMAC over a
	// time window under a key derived from KEK and the issuer, so every
	// replica with the same KEK and issuer issues and accepts the same ones
	// without a store write.
	DPoPNonce bool
	// Audience is the aud of access tokens (default "latch").
	Audience string
	// SigningAlgorithm is the algorithm of new signing keys: EdDSA
	// (default), ES256 or RS256. Changing it rotates through the keyring's
	// pre-publication; every replica must use the same one.
	SigningAlgorithm accesstoken.Algorithm

	IdleTimeout     time.Duration // default latch.DefaultIdleTimeout
	AbsoluteTimeout time.Duration // default latch.DefaultAbsoluteTimeout
	TouchInterval   time.Duration // default latch.DefaultTouchInterval
	AccessTokenTTL  time.Duration // default latch.DefaultAccessTokenTTL
	RefreshGrace    time.Duration // default latch.DefaultRefreshGrace
	MaxPerSubject   int           // default latch.DefaultMaxPerSubject; negative: no cap

	// CookieName is the session cookie whoami and logout accept (default
	// DefaultCookieName).
	CookieName string

	// RateLimit is the sustained rate, in requests per second, each client
	// (IP address, IPv6 /64) may send to the public endpoints /v1/refresh,
	// /v1/whoami and /v1/logout together (default DefaultRateLimit);
	// negative: no limit. Calls with the API key are never limited.
	RateLimit float64
	// RateBurst is how many requests a client may send at once before the
	// rate applies (default DefaultRateBurst).
	RateBurst int
	// SeparateMetrics takes /metrics off the API's handler; serve it on a
	// listener of its own with MetricsHTTPServer (latch serve
	// --metrics-addr), so it is not exposed with the public API.
	SeparateMetrics bool
	// TrustedProxies are the peers whose X-Forwarded-For header names the
	// client (for rate limits, the request log and the recorded IP). From
	// any other peer the header is ignored.
	TrustedProxies []netip.Prefix

	// Logger receives the request log and the Manager's events (default:
	// JSON on stderr).
	Logger *slog.Logger
	// Observer, if set, also receives the Manager's events.
	Observer latch.Observer
	// Now is the clock (default time.Now). Tests pass a fake one.
	Now func() time.Time

	// SweepInterval is how often expired sessions are swept from stores
	// without native expiry (default 1 min).
	SweepInterval time.Duration
	// KeyMaintenanceInterval is how often the keyring is reloaded and
	// rotated when due (default 1 min).
	KeyMaintenanceInterval time.Duration

	// EventHeartbeat is the heartbeat interval of GET /v1/events (default
	// DefaultEventHeartbeat); it must be shorter than the staleness bound.
	EventHeartbeat time.Duration
	// EventRetention and EventRetentionCount size the replay window of
	// GET /v1/events (defaults latch.DefaultEventRetention and
	// latch.DefaultEventRetentionCount).
	EventRetention      time.Duration
	EventRetentionCount int
	// EventStaleness is the bound within which the server's own link to the
	// store must be proven for its streams to send heartbeats (default
	// DefaultEventStaleness). Each heartbeat says how long ago that proof
	// was, and a client's cache counts its bound from the proof, not from
	// the heartbeat's arrival: a client behind a replica cut off from its
	// store serves a cached session for at most its own bound (250 ms by
	// default) after the replica last heard from the store.
	EventStaleness time.Duration
}

// Server is latch's HTTP API. It is safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	store    store.Store // instrumented
	mgr      *latch.Manager
	keys     *accesstoken.Keyring
	verifier *accesstoken.Verifier
	dpop     *dpop.Verifier // nil: the store keeps no replay cache
	keyHash  [sha256.Size]byte
	cop      *http.CrossOriginProtection
	cookie   string
	limiter  *ratelimit.Limiter // nil: no limit

	streamsDone chan struct{} // closed by endStreams
	endOnce     sync.Once

	mux     *http.ServeMux
	handler http.Handler
	root    atomic.Pointer[http.Handler]
}

// New checks opts, opens the keyring and returns a Server.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: Options.Store is required")
	}
	if len(opts.APIKey) < MinAPIKeyLen {
		return nil, ErrWeakAPIKey
	}
	if opts.DefaultIssuer == "" {
		opts.DefaultIssuer = "latch"
	}
	if opts.Audience == "" {
		opts.Audience = "latch"
	}
	if opts.CookieName == "" {
		opts.CookieName = DefaultCookieName
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = latch.DefaultAccessTokenTTL
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.KeyMaintenanceInterval <= 0 {
		opts.KeyMaintenanceInterval = time.Minute
	}
	if opts.EventHeartbeat <= 0 {
		opts.EventHeartbeat = DefaultEventHeartbeat
	}
	if opts.EventStaleness <= 0 {
		opts.EventStaleness = DefaultEventStaleness
	}
	if opts.EventHeartbeat >= opts.EventStaleness {
		return nil, fmt.Errorf("server: the event heartbeat (%v) must be shorter than the staleness bound (%v), or every client would find its stream stale", opts.EventHeartbeat, opts.EventStaleness)
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, cookie: opts.CookieName, streamsDone: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.keyHash = sha256.Sum256([]byte(opts.APIKey))
	s.metrics = newMetrics()
	s.store = instrument(opts.Store, s.metrics)

	kc := accesstoken.KeyringConfig{
		KEK:           opts.KEK,
		Now:           s.now,
		MaxTokenTTL:   max(accesstoken.DefaultMaxTokenTTL, opts.AccessTokenTTL),
		InitialIssuer: opts.DefaultIssuer,
		Algorithm:     opts.SigningAlgorithm,
	}
	if ks, ok := s.store.(store.KeyStore); ok {
		if len(opts.KEK) == 0 {
			return nil, errors.New("server: Options.KEK is required to keep signing keys in the store")
		}
		kc.Store = ks
	} else {
		s.log.Warn("the store cannot keep signing keys; they live in this process only, and its access tokens die with it")
	}
	var err error
	if s.keys, err = accesstoken.OpenKeyring(ctx, kc); err != nil {
		return nil, fmt.Errorf("server: opening the signing keyring: %w", err)
	}
	if opts.Issuer == "" {
		opts.Issuer = s.keys.Issuer()
		s.opts.Issuer = opts.Issuer
	}
	issuer, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{
		Keys: s.keys, Issuer: opts.Issuer, Audience: opts.Audience, TTL: opts.AccessTokenTTL, Now: s.now,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if s.verifier, err = accesstoken.NewVerifier(accesstoken.VerifierConfig{
		Keys: s.keys, Issuer: opts.Issuer, Audience: opts.Audience, Now: s.now,
	}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if rc, ok := opts.Store.(store.ReplayCache); ok {
		s.dpop = &dpop.Verifier{Replay: rc, Now: s.now}
	}
	if opts.DPoPNonce {
		if s.dpop == nil {
			return nil, errors.New("server: DPoP nonces need a store with a replay cache, and this store keeps none")
		}
		if s.dpop.NonceKey, err = nonceKey(opts.KEK, opts.Issuer); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	events, _ := opts.Store.(store.EventLog)
	obs := []latch.Observer{s.metrics, latch.SlogObserver(s.log)}
	if opts.Observer != nil {
		obs = append(obs, opts.Observer)
	}
	if s.mgr, err = latch.New(latch.Config{
		Store:           s.store,
		IdleTimeout:     opts.IdleTimeout,
		AbsoluteTimeout: opts.AbsoluteTimeout,
		TouchInterval:   opts.TouchInterval,
		MaxPerSubject:   opts.MaxPerSubject,
		AccessTokens:    issuer,
		AccessTokenTTL:  opts.AccessTokenTTL,
		RefreshGrace:    opts.RefreshGrace,
		Observer:        latch.MultiObserver(obs...),
		Now:             s.now,
		// The instrumented store hides the capability; events are not timed.
		Events:              events,
		EventRetention:      opts.EventRetention,
		EventRetentionCount: opts.EventRetentionCount,
		StalenessBound:      opts.EventStaleness,
	}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "latch_events_published_total",
		Help: "Events this replica received from the store's event log (every replica counts every event), plus its own audit events while streamed.",
	}, func() float64 { return float64(s.mgr.EventStats().Received) }))
	s.cop = http.NewCrossOriginProtection() // checked by logout with a cookie
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = DefaultRateBurst
	}
	s.limiter = ratelimit.New(opts.RateLimit, opts.RateBurst, 0)
	s.routes()
	return s, nil
}

// Manager returns the server's session manager, for handlers mounted with
// Mount (the demo app builds its middleware on it).
func (s *Server) Manager() *latch.Manager { return s.mgr }

// Verifier returns the server's access-token verifier.
func (s *Server) Verifier() *accesstoken.Verifier { return s.verifier }

// Keyring returns the server's signing keyring.
func (s *Server) Keyring() *accesstoken.Keyring { return s.keys }

// Issuer returns the iss of the server's access tokens: Options.Issuer, or
// the one recorded in the store.
func (s *Server) Issuer() string { return s.opts.Issuer }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Mount serves h for every request no API route matches (the demo web app
// at "/"). Paths under /v1/ and the operations endpoints stay the API's.
// It may be called at any time, concurrently with requests.
func (s *Server) Mount(h http.Handler) { s.root.Store(&h) }

// Handler returns the server's complete HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run runs the background loops until ctx ends: the expiry sweeper (for
// stores without native expiry) and keyring maintenance, which reloads the
// keys other replicas saved and rotates when due.
func (s *Server) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.mgr.RunSweeper(ctx, s.opts.SweepInterval)
	}()
	t := time.NewTicker(s.opts.KeyMaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-t.C:
			s.maintainKeys(ctx)
		}
	}
}

// maintainKeys runs the keyring's scheduled rotation and announces a change
// of the published keys (a successor pre-published, a retired key removed)
// as keys.changed, so event-stream clients refetch the JWKS at once rather
// than when its max-age runs out. A change made by another replica is
// announced by this one too when it loads it: clients handle keys.changed
// idempotently.
func (s *Server) maintainKeys(ctx context.Context) {
	before := s.keys.JWKS()
	if err := s.keys.Maintain(ctx); err != nil {
		if ctx.Err() == nil {
			s.log.Error("keyring maintenance failed; retrying later", "err", err.Error())
		}
		return
	}
	if bytes.Equal(before, s.keys.JWKS()) {
		return
	}
	var newest accesstoken.KeyInfo
	for _, k := range s.keys.Keys() {
		if k.Revoked.IsZero() && !k.Activates.Before(newest.Activates) {
			newest = k
		}
	}
	s.keysChanged(ctx, newest.ID, "rotated")
}

// authorized reports whether r carries the API key as a Bearer credential.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok {
		return false
	}
	// Hashed from a stack copy: []byte(tok) would allocate for any key
	// longer than 32 bytes. Comparing hashes keeps the comparison constant
	// time whatever the lengths.
	var b [256]byte
	var h [sha256.Size]byte
	if len(tok) <= len(b) {
		n := copy(b[:], tok)
		h = sha256.Sum256(b[:n])
		clear(b[:n])
	} else {
		h = sha256.Sum256([]byte(tok))
	}
	return subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}

// bearer returns the credential of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	a := header(r.Header, "Authorization")
	const p = "bearer "
	if len(a) <= len(p) || !strings.EqualFold(a[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(a[len(p):]), true
}
