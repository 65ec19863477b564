package dpop_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store/memstore"
)

// The cost DPoP adds (issue 14's target: at most one signature
// verification and one store round trip): a bound access token verified
// with its proof against a plain one, and a bound session's refresh with
// its proof against a plain refresh, all on the memory store with EdDSA.
// Proofs are made before the timer starts, one per iteration (each jti is
// fresh, as a client's would be).

const benchHTU = "https://latch.example/v1/refresh"

func nowUnix() int64     { return time.Now().Unix() }
func timeNow() time.Time { return time.Now() }

func benchKeys(b *testing.B) (*accesstoken.Issuer, *accesstoken.StaticKeys) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := accesstoken.NewEd25519Key("", priv)
	keys, _ := accesstoken.NewStaticKeys(key)
	iss, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: keys, Issuer: "https://latch.test", Audience: "app"})
	if err != nil {
		b.Fatal(err)
	}
	return iss, keys
}

func proofs(_ *testing.B, s *signer, n int, cl map[string]any) []string {
	out := make([]string, n)
	for i := range out {
		c := map[string]any{"jti": rand.Text(), "iat": nowUnix()}
		for k, v := range cl {
			c[k] = v
		}
		out[i] = s.proof(nil, c)
	}
	return out
}

func BenchmarkRefreshPlain(b *testing.B) { benchRefresh(b, false) }
func BenchmarkRefreshDPoP(b *testing.B)  { benchRefresh(b, true) }

func benchRefresh(b *testing.B, bound bool) {
	ctx := context.Background()
	st := memstore.New()
	iss, _ := benchKeys(b)
	m, err := latch.New(latch.Config{Store: st, Observer: latch.DiscardObserver, AccessTokens: iss})
	if err != nil {
		b.Fatal(err)
	}
	s := newSigner(b, "EdDSA")
	ns := latch.NewSession{Subject: "alice"}
	if bound {
		ns.JKT = s.jkt()
	}
	is, err := m.Create(ctx, ns)
	if err != nil {
		b.Fatal(err)
	}
	v := &dpop.Verifier{Replay: st}
	ps := proofs(b, s, b.N, nil)
	tok := is.RefreshToken.Reveal()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		var prove latch.ProofCheck
		if bound {
			prove = func(ctx context.Context, jkt string) error {
				_, err := v.Verify(ctx, ps[i], dpop.Use{Method: "POST", URL: benchHTU, JKT: jkt})
				return err
			}
		}
		r, err := m.RefreshProof(ctx, tok, prove)
		if err != nil {
			b.Fatal(err)
		}
		tok = r.RefreshToken.Reveal()
	}
}

func BenchmarkVerifyAccessPlain(b *testing.B) { benchAccess(b, false) }
func BenchmarkVerifyAccessDPoP(b *testing.B)  { benchAccess(b, true) }

func benchAccess(b *testing.B, bound bool) {
	ctx := context.Background()
	st := memstore.New()
	iss, keys := benchKeys(b)
	s := newSigner(b, "EdDSA")
	c := accesstoken.Claims{Subject: "alice", ExpiresAt: timeNow().Add(10 * time.Minute), IssuedAt: timeNow()}
	if bound {
		c.JKT = s.jkt()
	}
	tok, err := iss.Issue(ctx, c)
	if err != nil {
		b.Fatal(err)
	}
	av, err := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: keys, Issuer: "https://latch.test", Audience: "app", CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	v := &dpop.Verifier{Replay: st}
	ps := proofs(b, s, b.N, map[string]any{"htm": "GET", "htu": "https://api.example/orders", "ath": ath(tok)})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cl, err := av.Verify(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		if bound {
			if _, err := v.Verify(ctx, ps[i], dpop.Use{Method: "GET", URL: "https://api.example/orders", AccessToken: tok, JKT: cl.JKT}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
