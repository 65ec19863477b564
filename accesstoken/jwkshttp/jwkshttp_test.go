package jwkshttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func TestHandler(t *testing.T) {
	kr, err := accesstoken.OpenKeyring(context.Background(), accesstoken.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(kr, kr.JWKSMaxAge())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, max-age=600" ||
		rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(kr.JWKS()) {
		t.Errorf("GET: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestRemote(t *testing.T) {
	ctx := context.Background()
	clk := &clock{}
	clk.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	kr, _ := accesstoken.OpenKeyring(ctx, accesstoken.KeyringConfig{Now: clk.Now})
	var fetches atomic.Int32
	var cacheControl atomic.Value
	cacheControl.Store("public, max-age=600")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", cacheControl.Load().(string))
		w.Write(kr.JWKS())
	}))
	defer srv.Close()
	rem, err := NewRemote(RemoteConfig{URL: srv.URL, Now: clk.Now, MinRefetchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: kr, Issuer: "i", Audience: "a", Now: clk.Now})
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: rem, Issuer: "i", Audience: "a", Now: clk.Now, CacheSize: -1})
	tok, _ := iss.Issue(ctx, accesstoken.Claims{Subject: "u"})
	for range 5 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1 (cached)", n)
	}
	// Unknown kids: at most one refetch per interval (none within the
	// interval after the first fetch).
	rem.VerificationKey(ctx, "unknown")
	if n := fetches.Load(); n != 1 {
		t.Errorf("refetched within the interval: %d", n)
	}
	clk.Add(time.Minute)
	for i := range 20 {
		if _, err := rem.VerificationKey(ctx, "unknown"+string(rune('a'+i))); !errors.Is(err, accesstoken.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("fetches after unknown kids = %d, want 2", n)
	}
	// A new key is picked up on first sight once the interval has passed.
	kid, _ := kr.Rotate(ctx)
	clk.Add(time.Minute)
	if _, err := rem.VerificationKey(ctx, kid); err != nil {
		t.Fatalf("new key: %v", err)
	}
	// Expiry by max-age.
	n := fetches.Load()
	clk.Add(11 * time.Minute)
	tok, _ = iss.Issue(ctx, accesstoken.Claims{Subject: "u"})
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if fetches.Load() != n+1 {
		t.Error("no refetch after max-age")
	}
	// Server failing: stale keys keep working.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.Error(w, "down", 500)
	})
	clk.Add(time.Hour)
	kr.Maintain(ctx)
	tok, _ = iss.Issue(ctx, accesstoken.Claims{Subject: "u"})
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("stale keys not used: %v", err)
	}
}

func TestRemoteConfig(t *testing.T) {
	for _, u := range []string{"http://example.com/jwks", "ftp://x/y", "relative", ""} {
		if _, err := NewRemote(RemoteConfig{URL: u}); err == nil {
			t.Errorf("accepted %q", u)
		}
	}
	for _, u := range []string{"https://example.com/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks"} {
		if _, err := NewRemote(RemoteConfig{URL: u}); err != nil {
			t.Errorf("refused %q: %v", u, err)
		}
	}
	r, _ := NewRemote(RemoteConfig{URL: "https://x/", MinRefetchInterval: time.Minute})
	for cc, want := range map[string]time.Duration{
		"max-age=300":           5 * time.Minute,
		"public, max-age=10":    time.Minute,
		"no-store":              time.Minute,
		"max-age=99999999":      24 * time.Hour,
		"":                      5 * time.Minute,
		"max-age=abc":           5 * time.Minute,
		"no-cache, max-age=600": 10 * time.Minute,
	} {
		if got := r.maxAge(cc); got != want {
			t.Errorf("maxAge(%q) = %v, want %v", cc, got, want)
		}
	}
}

func TestRemoteNoServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	r, _ := NewRemote(RemoteConfig{URL: srv.URL})
	if _, err := r.VerificationKey(context.Background(), "k"); !errors.Is(err, accesstoken.ErrUnknownKey) {
		t.Errorf("unreachable JWKS: %v", err)
	}
}
