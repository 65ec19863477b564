// Package jwkshttp serves and fetches JWK Set documents over HTTP: a
// handler for an issuer's /.well-known/jwks.json, and a remote key set that
// lets any Go service verify latch access tokens offline.
//
// It is separate from package accesstoken so that the core of latch stays
// free of net/http.
//
//	keys, err := jwkshttp.NewRemote(jwkshttp.RemoteConfig{URL: "https://auth.example.com/.well-known/jwks.json"})
//	v, err := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: keys, Issuer: "https://auth.example.com", Audience: "api"})
//	claims, err := v.Verify(ctx, bearerToken)
//
// # Security model
//
// A Remote trusts whatever the configured URL serves, so the URL must be
// https (plain http is accepted only for loopback hosts or with
// AllowInsecureHTTP). Keys are taken only from that document, never from a
// token (jku, x5u and jwk headers are refused by the verifier). A token with
// an unknown kid triggers at most one refetch per MinRefetchInterval, so a
// flood of made-up kids cannot turn into a flood of requests.
package jwkshttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

// Source is a JWK Set to serve, such as *accesstoken.Keyring or
// *accesstoken.StaticKeys.
type Source interface {
	JWKS() []byte
}

// Handler serves src's JWK Set document to GET and HEAD requests with
// Cache-Control: public, max-age=maxAge (in whole seconds). For a Keyring,
// pass Keyring.JWKSMaxAge(): its keys are published longer in advance than
// that. Other methods get 405.
func Handler(src Source, maxAge time.Duration) http.Handler {
	cc := "public, max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		doc := src.JWKS()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", cc)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(doc)))
		if r.Method == http.MethodGet {
			w.Write(doc)
		}
	})
}

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// URL of the JWK Set document. https, unless the host is a loopback
	// address or AllowInsecureHTTP is set. Required.
	URL               string
	AllowInsecureHTTP bool
	// Client makes the requests. Default: a client with a 10s timeout.
	Client *http.Client
	// MinRefetchInterval is the least time between two fetches, however
	// many unknown kids arrive; it is also the shortest cache lifetime.
	// Default 30s.
	MinRefetchInterval time.Duration
	// DefaultMaxAge is the cache lifetime when the response has no usable
	// Cache-Control max-age. Default 5m. Lifetimes are capped at 24h.
	DefaultMaxAge time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Remote is an accesstoken.KeySet fetched from a URL, cached for the
// response's Cache-Control max-age, and refetched early (at most once per
// MinRefetchInterval) when a token names a kid it does not know. If a
// refetch fails, the last good keys stay in use and the fetch is retried
// after MinRefetchInterval. It is safe for concurrent use.
type Remote struct {
	cfg    RemoteConfig
	client *http.Client
	now    func() time.Time

	snap        atomic.Pointer[snapshot]
	mu          sync.Mutex // one fetch at a time
	lastAttempt atomic.Int64
}

type snapshot struct {
	byKid   map[string]*accesstoken.Key
	expires time.Time
	err     error // last fetch error, when there are no keys yet
}

// NewRemote returns a Remote. It does not fetch until the first lookup
// (call Refresh to fetch eagerly).
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, errors.New("jwkshttp: RemoteConfig.URL must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !cfg.AllowInsecureHTTP && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, errors.New("jwkshttp: JWKS URL must use https (keys fetched over plain http can be replaced in transit)")
		}
	default:
		return nil, errors.New("jwkshttp: JWKS URL must use https")
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = 30 * time.Second
	}
	if cfg.DefaultMaxAge <= 0 {
		cfg.DefaultMaxAge = 5 * time.Minute
	}
	r := &Remote{cfg: cfg, client: cfg.Client, now: cfg.Now}
	if r.client == nil {
		r.client = &http.Client{Timeout: 10 * time.Second}
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

var errUnknown = fmt.Errorf("%w: not in the remote JWKS", accesstoken.ErrUnknownKey)

// VerificationKey implements accesstoken.KeySet.
func (r *Remote) VerificationKey(ctx context.Context, kid string) (*accesstoken.Key, error) {
	s := r.snap.Load()
	now := r.now()
	if s == nil || !now.Before(s.expires) {
		r.fetchIfDue(ctx, s, now, s == nil)
		s = r.snap.Load()
	}
	if s != nil {
		if k, ok := s.byKid[kid]; ok {
			return k, nil
		}
		// Unknown kid: perhaps a new key. Refetch, rate-limited.
		if r.fetchIfDue(ctx, s, now, false) {
			s = r.snap.Load()
			if k, ok := s.byKid[kid]; ok {
				return k, nil
			}
		}
	}
	if s == nil || s.byKid == nil {
		err := errors.New("no keys fetched")
		if s != nil && s.err != nil {
			err = s.err
		}
		return nil, fmt.Errorf("%w: %w", accesstoken.ErrUnknownKey, err)
	}
	return nil, errUnknown
}

// fetchIfDue fetches unless another fetch happened since seen was loaded or
// the last attempt is more recent than MinRefetchInterval (force skips the
// interval, for the very first fetch). It reports whether the snapshot
// changed.
func (r *Remote) fetchIfDue(ctx context.Context, seen *snapshot, now time.Time, force bool) bool {
	if seen != nil && seen.byKid != nil && !force {
		// Good keys exist: never queue behind a slow fetch in progress.
		if !r.mu.TryLock() {
			return false
		}
	} else {
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	if r.snap.Load() != seen {
		return true
	}
	if last := r.lastAttempt.Load(); !force && last != 0 && now.UnixNano()-last < int64(r.cfg.MinRefetchInterval) {
		return false
	}
	r.lastAttempt.Store(now.UnixNano())
	if err := r.fetch(ctx, seen, now); err != nil && (seen == nil || seen.byKid == nil) {
		r.snap.Store(&snapshot{err: err, expires: now.Add(r.cfg.MinRefetchInterval)})
	}
	return r.snap.Load() != seen
}

// Refresh fetches the document now.
func (r *Remote) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.lastAttempt.Store(now.UnixNano())
	return r.fetch(ctx, r.snap.Load(), now)
}

func (r *Remote) fetch(ctx context.Context, old *snapshot, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("jwkshttp: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwkshttp: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwkshttp: fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, accesstoken.MaxJWKSSize+1))
	if err != nil {
		return fmt.Errorf("jwkshttp: reading JWKS: %w", err)
	}
	keys, err := accesstoken.ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("jwkshttp: %w", err)
	}
	s := &snapshot{byKid: make(map[string]*accesstoken.Key, len(keys)),
		expires: now.Add(r.maxAge(resp.Header.Get("Cache-Control")))}
	for _, k := range keys {
		// Keep the same *Key for an unchanged key, so verified-token
		// caches stay warm across refetches.
		if old != nil {
			if ok, found := old.byKid[k.ID()]; found && ok.Thumbprint() == k.Thumbprint() && ok.Algorithm() == k.Algorithm() {
				k = ok
			}
		}
		s.byKid[k.ID()] = k
	}
	r.snap.Store(s)
	return nil
}

// maxAge reads the cache lifetime from a Cache-Control header.
func (r *Remote) maxAge(cc string) time.Duration {
	age := r.cfg.DefaultMaxAge
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			age = 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 {
				age = time.Duration(min(n, 86400)) * time.Second
			}
		}
	}
	return min(max(age, r.cfg.MinRefetchInterval), 24*time.Hour)
}
