package dpop_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
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
// its proof against a plain refresh, all on the memory store with EdDSA,
// next to the two things a proof may add: one Ed25519 verification and
// one replay-cache call. Proofs are made before the timer starts, one per
// iteration (each jti is fresh, as a client's would be). Each benchmark
// reports its process CPU time per operation (cpu-µs/op, steadier than
// ns/op on a loaded machine) and its replay-cache calls.

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

// measure runs op b.N times and reports its CPU time per operation.
func measure(b *testing.B, op func(i int)) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
}

// counting counts replay-cache calls.
type counting struct {
	*memstore.Store
	replays int
}

func (c *counting) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	c.replays++
	return c.Store.Seen(ctx, key, until)
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
	cs := &counting{Store: st}
	v := &dpop.Verifier{Replay: cs}
	ps := proofs(b, s, b.N, nil)
	tok := is.RefreshToken.Reveal()
	measure(b, func(i int) {
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
	})
	b.ReportMetric(float64(cs.replays)/float64(b.N), "replay-calls/op")
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
	cs := &counting{Store: st}
	v := &dpop.Verifier{Replay: cs}
	ps := proofs(b, s, b.N, map[string]any{"htm": "GET", "htu": "https://api.example/orders", "ath": ath(tok)})
	measure(b, func(i int) {
		cl, err := av.Verify(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		if bound {
			if _, err := v.Verify(ctx, ps[i], dpop.Use{Method: "GET", URL: "https://api.example/orders", AccessToken: tok, JKT: cl.JKT}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(cs.replays)/float64(b.N), "replay-calls/op")
}

// BenchmarkEd25519Verify is one verification of a proof's signature by
// crypto/ed25519 alone: what a proof may add at most, with the replay
// call below.
func BenchmarkEd25519Verify(b *testing.B) {
	s := newSigner(b, "EdDSA")
	p := s.proof(nil, map[string]any{"ath": ath("t")})
	in := p[:strings.LastIndexByte(p, '.')]
	sig, _ := enc.DecodeString(p[len(in)+1:])
	pub, _ := enc.DecodeString(s.jwk["x"].(string))
	measure(b, func(int) {
		if !ed25519.Verify(pub, []byte(in), sig) {
			b.Fatal("the signature does not verify")
		}
	})
}

// BenchmarkReplaySeen is one replay-cache call on the memory store.
func BenchmarkReplaySeen(b *testing.B) {
	st := memstore.New()
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "dpop:" + rand.Text()
	}
	measure(b, func(i int) {
		if fresh, err := st.Seen(context.Background(), keys[i], time.Now().Add(time.Minute)); err != nil || !fresh {
			b.Fatal(fresh, err)
		}
	})
}

// BenchmarkProofVerify is a proof's check alone (with ath and the replay
// call), to set against BenchmarkEd25519Verify + BenchmarkReplaySeen.
func BenchmarkProofVerify(b *testing.B) {
	s := newSigner(b, "EdDSA")
	const tok = "an.access.token"
	ps := proofs(b, s, b.N, map[string]any{"htm": "GET", "htu": "https://api.example/orders", "ath": ath(tok)})
	v := &dpop.Verifier{Replay: memstore.New()}
	use := dpop.Use{Method: "GET", URL: "https://api.example/orders", AccessToken: tok, JKT: s.jkt()}
	measure(b, func(i int) {
		if _, err := v.Verify(context.Background(), ps[i], use); err != nil {
			b.Fatal(err)
		}
	})
}
