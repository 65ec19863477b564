package latch_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store/memstore"
)

// signedEnv is a manager issuing real EdDSA access tokens, and a verifier
// in online mode that asks the manager whether the session is live.
func signedEnv(t *testing.T) (*env, *accesstoken.Verifier) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := accesstoken.NewEd25519Key("", priv)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := accesstoken.NewStaticKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{clock: newClock(), rec: newRecorder(), store: memstore.New()}
	iss, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: keys, Issuer: "https://latch.test", Audience: "app", Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.m, err = latch.New(latch.Config{Store: e.store, Now: e.clock.Now, Observer: e.rec, AccessTokens: iss})
	if err != nil {
		t.Fatal(err)
	}
	v, err := accesstoken.NewVerifier(accesstoken.VerifierConfig{
		Keys: keys, Issuer: "https://latch.test", Audience: "app", Now: e.clock.Now,
		Online: func(ctx context.Context, c accesstoken.Claims) error {
			if _, err := e.m.ValidateAccess(ctx, c, latch.Client{}); err != nil {
				return accesstoken.ErrRevoked
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, v
}

func TestAccessTokenCarriesTheSession(t *testing.T) {
	e, v := signedEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", Claims: []byte(`{"role":"reader"}`)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, is.AccessToken.Reveal())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != "alice" || c.SessionID != is.Session.ID() || string(c.Extra) != `{"role":"reader"}` {
		t.Fatalf("claims %+v", c)
	}
	if !c.ExpiresAt.Equal(is.AccessExpiresAt) {
		t.Fatalf("exp %v, Issued says %v", c.ExpiresAt, is.AccessExpiresAt)
	}
	// Revoking the record ends the access token too (online mode).
	if err := e.m.Revoke(ctx, is.Session.ID(), "logout"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, is.AccessToken.Reveal()); !errors.Is(err, accesstoken.ErrRevoked) {
		t.Fatalf("access token after revoke: %v", err)
	}
}

func TestReservedClaimsRefused(t *testing.T) {
	e, _ := signedEnv(t)
	for _, c := range []string{`{"sub":"root"}`, `{"sid":"x"}`, `{"exp":1}`, `{"iss":"evil"}`, `{"aud":"x"}`} {
		_, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", Claims: []byte(c)})
		if !errors.Is(err, latch.ErrBadInput) {
			t.Errorf("claims %s: %v", c, err)
		}
	}
}

func TestConcurrentRefreshYieldsIdenticalSignedTokens(t *testing.T) {
	e, v := signedEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(3 * time.Minute)
	const tabs = 20
	out := make([]*latch.Refreshed, tabs)
	errs := make([]error, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = e.m.Refresh(ctx, is.RefreshToken.Reveal())
		}()
	}
	wg.Wait()
	for i := range tabs {
		if errs[i] != nil {
			t.Fatalf("tab %d: %v", i, errs[i])
		}
		if out[i].AccessToken.Reveal() != out[0].AccessToken.Reveal() || out[i].RefreshToken != out[0].RefreshToken {
			t.Fatalf("tab %d got a different token pair", i)
		}
	}
	c, err := v.Verify(ctx, out[0].AccessToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if !c.IssuedAt.Equal(e.clock.Now().Truncate(time.Second)) {
		t.Fatalf("iat %v", c.IssuedAt)
	}
	// After the grace window the same parent is theft, and the access
	// tokens of the session die with it.
	e.clock.Advance(time.Minute)
	if _, err := e.m.Refresh(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := v.Verify(ctx, out[0].AccessToken.Reveal()); !errors.Is(err, accesstoken.ErrRevoked) {
		t.Fatalf("access token after reuse detection: %v", err)
	}
}

func TestValidateAccess(t *testing.T) {
	e, v := signedEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(tok latch.Token) accesstoken.Claims {
		t.Helper()
		c, err := v.Verify(ctx, tok.Reveal())
		if err != nil && !errors.Is(err, accesstoken.ErrRevoked) {
			t.Fatalf("Verify: %v", err)
		}
		return c
	}
	old := verify(is.AccessToken)

	e.clock.Advance(2 * time.Minute)
	s, err := e.m.ValidateAccess(ctx, old, latch.Client{IP: "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastSeenAt().Equal(e.clock.Now()) || s.IP() != "2001:db8::1" {
		t.Fatal("ValidateAccess did not record activity")
	}

	// A token whose subject is not its session's is refused.
	forged := old
	forged.Subject = "mallory"
	if _, err := e.m.ValidateAccess(ctx, forged, latch.Client{}); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("subject mismatch: %v", err)
	}

	// Renewal ends every older token, access tokens included; tokens of the
	// new family (issued by Renew and by later refreshes) work.
	re, err := e.m.Renew(ctx, is.Session.ID(), latch.Renewal{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ValidateAccess(ctx, old, latch.Client{}); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("access token from before renewal: %v", err)
	}
	if _, err := e.m.ValidateAccess(ctx, verify(re.AccessToken), latch.Client{}); err != nil {
		t.Fatalf("renewed access token: %v", err)
	}
	r, err := e.m.Refresh(ctx, re.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	refreshed := verify(r.AccessToken)
	if _, err := e.m.ValidateAccess(ctx, refreshed, latch.Client{}); err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}

	if err := e.m.Revoke(ctx, is.Session.ID(), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ValidateAccess(ctx, refreshed, latch.Client{}); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	b, _ := e.m.Create(ctx, latch.NewSession{Subject: "bob"})
	bc := verify(b.AccessToken)
	e.clock.Advance(latch.DefaultIdleTimeout)
	if _, err := e.m.ValidateAccess(ctx, bc, latch.Client{}); !errors.Is(err, latch.ErrIdleTimeout) {
		t.Fatalf("idle: %v", err)
	}
	bc.SessionID = "ses_bogus"
	if _, err := e.m.ValidateAccess(ctx, bc, latch.Client{}); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("malformed sid: %v", err)
	}
}

// ValidateAccess runs on every bearer request, often after a cached
// signature check: it must stay a map read and a hash, without allocating
// more than the returned Session.
func TestValidateAccessAllocs(t *testing.T) {
	e, v := signedEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, is.AccessToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := e.m.ValidateAccess(ctx, c, latch.Client{}); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("ValidateAccess allocates %v times per call; the budget is 1", n)
	}
}
