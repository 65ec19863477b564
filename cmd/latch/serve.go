package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/demo"
	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/latchhttp"
)

// Defaults of latch serve.
const (
	defaultAddr    = "127.0.0.1:8080"
	defaultDataDir = "latch-data"
	apiKeyFile     = "api-key"
	kekFile        = "kek"
)

type serveConfig struct {
	addr, storeURL, dataDir string
	issuer, audience        string
	publicURL               string
	signingAlg              string
	dpopNonce               bool
	idle, absolute, touch   time.Duration
	accessTTL, refreshGrace time.Duration
	maxPerSubject           int
	cookieName              string
	demo                    bool
	demoPassword            string
	tlsCert, tlsKey         string
	insecure                bool
	logLevel                string
	rateLimit               float64
	rateBurst               int
	trustedProxies          string
	metricsAddr             string
	proxies                 []netip.Prefix // parsed from trustedProxies
	eventHeartbeat          time.Duration
	eventRetention          time.Duration
	eventRetentionCount     int
}

var serveCmd = command{
	name:  "serve",
	about: "Run the latch server: the HTTP API, JWKS, health checks and metrics.",
}

func serve(ctx context.Context, u *ui, args []string) error {
	var c serveConfig
	fs := newFlags(serveCmd)
	fs.StringVar(&c.addr, "addr", defaultAddr, "`host:port` to listen on; plain HTTP only on loopback addresses")
	fs.StringVar(&c.storeURL, "store", "", "session store: a bbolt file path, `URL` memory:, redis://…, redis-cluster://h1,h2,…, redis-sentinel://…, postgres://…, mysql://user:password@host:3306/db (default: the bbolt file latch-data/latch.db)")
	fs.StringVar(&c.dataDir, "data-dir", "", "`directory` for the generated API key and KEK files (default: the bbolt file's directory, else ./latch-data)")
	fs.StringVar(&c.issuer, "issuer", "", "`iss` of access tokens (default: the server's URL at its first start on the store, kept there for restarts and replicas)")
	fs.StringVar(&c.publicURL, "public-url", "", "latch's own `URL` as clients reach it (through any proxy), the base of the htu of DPoP proofs sent to latch directly (default: the issuer if it is an http(s) URL)")
	fs.StringVar(&c.audience, "audience", "latch", "`aud` of access tokens")
	fs.BoolVar(&c.dpopNonce, "dpop-nonce", false, "demand DPoP server nonces (RFC 9449 §8): every proof must carry a recent DPoP-Nonce this deployment issued (same KEK and issuer on every replica)")
	fs.StringVar(&c.signingAlg, "signing-alg", string(accesstoken.EdDSA), "`algorithm` of access-token signing keys: EdDSA, ES256 or RS256 (a change rotates keys through pre-publication)")
	fs.DurationVar(&c.idle, "idle-timeout", latch.DefaultIdleTimeout, "end sessions unused for this `duration`")
	fs.DurationVar(&c.absolute, "absolute-timeout", latch.DefaultAbsoluteTimeout, "end every session this `duration` after it started")
	fs.DurationVar(&c.touch, "touch-interval", latch.DefaultTouchInterval, "record activity at most once per `duration` per session")
	fs.DurationVar(&c.accessTTL, "access-ttl", latch.DefaultAccessTokenTTL, "lifetime of access tokens")
	fs.DurationVar(&c.refreshGrace, "refresh-grace", latch.DefaultRefreshGrace, "how long a rotated refresh token still yields the same successor")
	fs.IntVar(&c.maxPerSubject, "max-per-subject", latch.DefaultMaxPerSubject, "live sessions per subject before the least recently used is evicted; -1: no limit")
	fs.StringVar(&c.cookieName, "cookie-name", server.DefaultCookieName, "session cookie `name` accepted by /v1/whoami and /v1/logout")
	fs.BoolVar(&c.demo, "demo", false, "also serve the demo web app at /")
	fs.StringVar(&c.demoPassword, "demo-password", "", "`password` of the demo users alice and bob (default: generated and printed)")
	fs.DurationVar(&c.eventHeartbeat, "event-heartbeat", server.DefaultEventHeartbeat, "heartbeat `interval` of GET /v1/events (sent only while the store link is proven alive)")
	fs.DurationVar(&c.eventRetention, "event-retention", latch.DefaultEventRetention, "keep events for resuming GET /v1/events at least this `duration`...")
	fs.IntVar(&c.eventRetentionCount, "event-retention-count", latch.DefaultEventRetentionCount, "...and at least this `number` of them")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.BoolVar(&c.insecure, "insecure", false, "allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.Float64Var(&c.rateLimit, "rate-limit", server.DefaultRateLimit, "requests per second each client IP may send to /v1/refresh, /v1/whoami and /v1/logout (calls with the API key are not limited); 0: no limit")
	fs.IntVar(&c.rateBurst, "rate-burst", server.DefaultRateBurst, "requests a client IP may send at once before --rate-limit applies")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this `host:port` instead of on --addr (over TLS when --tls-cert is set); it carries no secrets, so any address may be used")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated `CIDRs` of reverse proxies whose X-Forwarded-For names the client (for rate limits and logs); from other peers the header is ignored")
	pos, err := parse(u, serveCmd, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("serve takes no arguments, got %q", pos[0]).hint(`run "latch serve --help" for its flags`)
	}
	if err := c.check(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return usageErrorf("invalid --log-level").hint("use debug, info, warn or error")
	}
	logger := slog.New(slog.NewJSONHandler(u.stderr, &slog.HandlerOptions{Level: level}))

	st, err := openStore(ctx, c.storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	dataDir := c.dataDir
	if dataDir == "" {
		dataDir = defaultDataDir
		if st.boltPath != "" {
			dataDir = filepath.Dir(st.boltPath)
		}
	}
	kek, err := loadKEK(st, dataDir)
	if err != nil {
		return err
	}
	apiKey, saveAPIKey, err := loadAPIKey(dataDir)
	if err != nil {
		return err
	}
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	srv, err := server.New(ctx, server.Options{
		Store:            st.Store,
		APIKey:           apiKey,
		KEK:              kek,
		Issuer:           c.issuer,
		PublicURL:        c.publicURL,
		DefaultIssuer:    scheme + "://" + defaultIssuerHost(c.addr),
		Audience:         c.audience,
		SigningAlgorithm: accesstoken.Algorithm(c.signingAlg),
		DPoPNonce:        c.dpopNonce,
		IdleTimeout:      c.idle,
		AbsoluteTimeout:  c.absolute,
		TouchInterval:    c.touch,
		AccessTokenTTL:   c.accessTTL,
		RefreshGrace:     c.refreshGrace,
		MaxPerSubject:    c.maxPerSubject,
		CookieName:       c.cookieName,
		Logger:           logger,
		RateLimit:        rateLimitOption(c.rateLimit),
		RateBurst:        c.rateBurst,
		TrustedProxies:   c.proxies,
		SeparateMetrics:  c.metricsAddr != "",

		EventHeartbeat:      c.eventHeartbeat,
		EventRetention:      c.eventRetention,
		EventRetentionCount: c.eventRetentionCount,

		Now: faultClock(ctx, u),
	})
	if err != nil {
		e := errorf("%v", err)
		if errors.Is(err, accesstoken.ErrKEK) {
			e.hint("every replica must use the same KEK; set LATCH_KEK (generate one with: openssl rand -base64 32)")
		}
		return e
	}
	if c.demo {
		h, err := demoHandler(u, srv, c.demoPassword, demoHTTPConfig(c))
		if err != nil {
			e := errorf("starting the demo: %v", err)
			if c.demoPassword != "" {
				e.hint("choose a --demo-password of at least %d characters, or leave it unset to have one generated", demo.MinPasswordLen)
			}
			return e
		}
		srv.Mount(h)
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return errorf("cannot listen on %s: %v", c.addr, err).hint("choose another address with --addr or LATCH_ADDR")
	}
	u.printf("listening on %s://%s (store %s)", scheme, ln.Addr(), st.describe)
	u.printf("access tokens: issuer %s, audience %s", srv.Issuer(), c.audience)
	if c.demo {
		u.printf("demo at %s://%s/", scheme, browserAddr(ln.Addr()))
	}
	var mln net.Listener
	if c.metricsAddr != "" {
		if mln, err = net.Listen("tcp", c.metricsAddr); err != nil {
			ln.Close()
			return errorf("cannot listen on %s: %v", c.metricsAddr, err).hint("choose another address with --metrics-addr or LATCH_METRICS_ADDR")
		}
		u.printf("metrics at %s://%s/metrics", scheme, mln.Addr())
	}
	if saveAPIKey != nil {
		// Only now: a start that fails earlier must not leave a key file
		// behind that no server ever used.
		if err := saveAPIKey(u); err != nil {
			ln.Close()
			if mln != nil {
				mln.Close()
			}
			return err
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Run(runCtx)
	}()
	metricsErr := make(chan error, 1)
	if mln != nil {
		go func() {
			metricsErr <- server.Serve(runCtx, srv.MetricsHTTPServer(), mln, c.tlsCert, c.tlsKey, server.ShutdownTimeout)
		}()
	} else {
		metricsErr <- nil
	}
	err = server.Serve(ctx, srv.HTTPServer(), ln, c.tlsCert, c.tlsKey, server.ShutdownTimeout)
	stop()
	<-done
	if merr := <-metricsErr; err == nil && merr != nil {
		err = fmt.Errorf("metrics listener: %w", merr)
	}
	if err != nil {
		return errorf("serving: %v", err)
	}
	u.printf("shut down")
	return nil
}

func (c *serveConfig) check() error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usageErrorf("--tls-cert and --tls-key go together").hint("pass both, or neither for plain HTTP on a loopback address")
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return usageErrorf("invalid --addr: %v", unquoteFlagErr(err)).hint("use host:port, e.g. 127.0.0.1:8080")
	}
	if c.tlsCert == "" && !c.insecure && !isLoopback(host) {
		return usageErrorf("refusing to serve plain HTTP on %s: tokens and the API key would cross the network in the clear", c.addr).
			hint("pass --tls-cert and --tls-key, or listen on 127.0.0.1").
			hint("behind a proxy that terminates TLS, pass --insecure")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"idle-timeout", c.idle}, {"absolute-timeout", c.absolute}, {"touch-interval", c.touch}, {"access-ttl", c.accessTTL}, {"refresh-grace", c.refreshGrace}} {
		if d.v <= 0 {
			return usageErrorf("--%s must be positive", d.name)
		}
	}
	// latch.New checks the same, but names its Config fields.
	if c.touch >= c.idle {
		return usageErrorf("--touch-interval (%v) must be shorter than --idle-timeout (%v), or activity could go unrecorded until the session expires", c.touch, c.idle).
			hint("lower --touch-interval (e.g. --touch-interval %v) or raise --idle-timeout", max((c.idle/4).Truncate(time.Second), time.Second))
	}
	switch accesstoken.Algorithm(c.signingAlg) {
	case accesstoken.EdDSA, accesstoken.ES256, accesstoken.RS256:
	default:
		return usageErrorf("invalid --signing-alg %q", c.signingAlg).
			hint("use EdDSA (the default), ES256, or RS256 for verifiers without EdDSA or ES256 (e.g. Node's jsonwebtoken)")
	}
	if c.maxPerSubject == 0 || c.maxPerSubject < -1 {
		return usageErrorf("--max-per-subject must be positive, or -1 for no limit")
	}
	if c.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.metricsAddr); err != nil {
			return usageErrorf("invalid --metrics-addr: %v", unquoteFlagErr(err)).hint("use host:port, e.g. 127.0.0.1:9090")
		}
		if c.metricsAddr == c.addr {
			return usageErrorf("--metrics-addr must differ from --addr").hint("leave --metrics-addr unset to serve /metrics with the API")
		}
	}
	if c.rateLimit < 0 || math.IsNaN(c.rateLimit) || math.IsInf(c.rateLimit, 0) {
		return usageErrorf("--rate-limit must be a number of requests per second, or 0 for no limit")
	}
	if c.rateBurst < 1 {
		return usageErrorf("--rate-burst must be at least 1")
	}
	if c.proxies, err = parseProxies(c.trustedProxies); err != nil {
		return err
	}
	return nil
}

// rateLimitOption maps --rate-limit (0: off) to server.Options.RateLimit
// (negative: off).
func rateLimitOption(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

// parseProxies reads --trusted-proxies: CIDRs or single addresses,
// separated by commas.
func parseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, usageErrorf("invalid --trusted-proxies: %q is not a CIDR or an IP address", f).
					hint("use e.g. --trusted-proxies 10.0.0.0/8,fd00::/8")
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// isLoopback reports whether host names only the loopback interface. An
// empty host (all interfaces) is not loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadAPIKey returns the API key from LATCH_API_KEY, or from the data
// directory's key file. On a first start it generates one and returns save,
// which writes that file (mode 0600) once the server is sure to start. The key
// itself is never printed.
func loadAPIKey(dataDir string) (key string, save func(*ui) error, err error) {
	if k := os.Getenv("LATCH_API_KEY"); k != "" {
		k = strings.TrimSpace(k)
		if len(k) < server.MinAPIKeyLen {
			return "", nil, errorf("LATCH_API_KEY is too short (%d characters); it must have at least %d", len(k), server.MinAPIKeyLen).
				hint("generate one with: openssl rand -base64 32")
		}
		return k, nil, nil
	}
	path := filepath.Join(dataDir, apiKeyFile)
	k, err := readSecretFile(path)
	if err == nil {
		if len(k) < server.MinAPIKeyLen {
			return "", nil, errorf("the API key in %s is too short (%d characters); it must have at least %d", path, len(k), server.MinAPIKeyLen).
				hint("delete the file to have a new one generated, or set LATCH_API_KEY (openssl rand -base64 32)")
		}
		return k, nil, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", nil, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, errorf("generating an API key: %v", err)
	}
	k = "lak_" + base64.RawURLEncoding.EncodeToString(b[:])
	return k, func(u *ui) error { return writeAPIKeyFile(u, dataDir, path, k) }, nil
}

func writeAPIKeyFile(u *ui, dataDir, path, k string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return errorf("creating the data directory: %v", err)
	}
	// O_EXCL: another process that generated a key meanwhile keeps its own,
	// and this one, already holding a different key, must not start.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errorf("creating the API key file: %v", err)
	}
	_, err = io.WriteString(f, k+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return errorf("writing the API key file: %v", err)
	}
	u.printf("generated an API key for the back-channel API in %s (mode 0600)", path)
	u.printf("clients send it as Authorization: Bearer <key>; the latch CLI reads it from there or from LATCH_API_KEY")
	return nil
}

// readSecretFile reads a small secret file that must not be accessible to
// group or others.
func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", errorf("%s is accessible by group or others (mode %v)", path, fi.Mode().Perm()).
			hint("run: chmod 600 %s", path)
	}
	if fi.Size() > 4096 {
		return "", errorf("%s is too large to be a key file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", errorf("reading %s: %v", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// loadKEK returns the keyring's key-encryption key: LATCH_KEK, or for the
// embedded store a generated 0600 file beside it; a memory store gets a
// random one (nothing outlives the process anyway).
func loadKEK(st *openedStore, dataDir string) ([]byte, error) {
	if v := os.Getenv("LATCH_KEK"); v != "" {
		k, err := accesstoken.KEKFromBase64(v)
		if err != nil {
			return nil, errorf("invalid LATCH_KEK: it must be 32 bytes in base64").hint("generate one with: openssl rand -base64 32")
		}
		return k, nil
	}
	switch {
	case st.memory:
		k := make([]byte, accesstoken.KEKSize)
		_, err := rand.Read(k)
		return k, err
	case st.boltPath != "":
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, errorf("creating the data directory: %v", err)
		}
		k, err := accesstoken.LoadOrCreateKEKFile(filepath.Join(dataDir, kekFile))
		if err != nil {
			return nil, errorf("%v", err)
		}
		return k, nil
	}
	return nil, errorf("LATCH_KEK is required with a shared store (%s): it encrypts the signing keys, and every replica must use the same one", st.describe).
		hint("generate one with: openssl rand -base64 32, and set it as LATCH_KEK on every replica")
}

// defaultIssuerHost is the host:port of the issuer URL recorded at the
// first start: addr, with a wildcard host replaced by the machine's name.
// Later starts and other replicas read the recorded one from the store;
// replicas behind one public name should set --issuer to its URL.
func defaultIssuerHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, port)
}

// demoHandler returns the demo web app latch serve --demo mounts at "/",
// built on srv.Manager() and the library's latchhttp middleware. password
// is --demo-password; if empty, one is generated and printed (the user needs
// it to sign in; a password the user chose is never printed).
func demoHandler(u *ui, srv *server.Server, password string, hc latchhttp.Config) (http.Handler, error) {
	generated := password == ""
	if generated {
		password = demo.GeneratePassword()
	}
	h, err := demo.New(srv.Manager(), demo.Config{
		Password: password,
		HTTP:     hc,
		Logger:   srv.Logger(),
		APILinks: true,
	})
	if err != nil {
		return nil, err
	}
	if generated {
		u.printf("demo users alice and bob, password %s (set your own with --demo-password)", password)
	}
	return h, nil
}

// demoHTTPConfig is the demo's middleware configuration: the server's
// cookie name, and behind --trusted-proxies the same X-Forwarded-For rule
// as the API, so its devices page shows the clients' addresses.
func demoHTTPConfig(c serveConfig) latchhttp.Config {
	hc := latchhttp.Config{CookieName: c.cookieName}
	if len(c.proxies) > 0 {
		hc.TrustedProxies, hc.ClientIPHeader = c.proxies, "X-Forwarded-For"
	}
	return hc
}

// browserAddr names a loopback listener "localhost", which every browser
// treats as a secure context, so the demo's Secure __Host- cookie is kept
// over plain HTTP (Safari drops it on http://127.0.0.1).
func browserAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return net.JoinHostPort("localhost", strconv.Itoa(ta.Port))
	}
	return a.String()
}
