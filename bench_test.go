package latch_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store/memstore"
)

func benchManager(tb testing.TB) (*latch.Manager, string) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		tb.Fatal(err)
	}
	is, err := m.Create(ctx, latch.NewSession{Subject: "alice", Data: []byte(`{"user":"alice","role":"admin","n":3}`)})
	if err != nil {
		tb.Fatal(err)
	}
	return m, is.SessionToken.Reveal()
}

// BenchmarkValidate is the hot path: a warm session on the memory store,
// validated within its touch interval.
func BenchmarkValidate(b *testing.B) {
	m, tok := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateParallel(b *testing.B) {
	m, tok := benchManager(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidateRead is validation plus reading one value of the
// session's data: the job compared with scs in the bench module.
func BenchmarkValidateRead(b *testing.B) {
	m, tok := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Validate(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		if v, ok := s.Value("role"); !ok || len(v) == 0 {
			b.Fatal("no role")
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	m, _ := benchManager(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Create(ctx, latch.NewSession{Subject: "bob"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefresh measures rotation on the memory store (target ≥ 30k/s on
// one core) without access tokens; BenchmarkRefreshSigned adds them.
func BenchmarkRefresh(b *testing.B) { benchRefresh(b, nil) }

// BenchmarkRefreshSigned is rotation including a real EdDSA access token:
// what a refresh costs end to end on the memory store.
func BenchmarkRefreshSigned(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := accesstoken.NewEd25519Key("", priv)
	keys, _ := accesstoken.NewStaticKeys(key)
	iss, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: keys, Issuer: "https://latch.test", Audience: "app"})
	if err != nil {
		b.Fatal(err)
	}
	benchRefresh(b, iss)
}

// benchRefresh rotates one session's refresh token over and over, each
// iteration presenting the token the previous one returned.
func benchRefresh(b *testing.B, iss latch.AccessTokenIssuer) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver, AccessTokens: iss})
	if err != nil {
		b.Fatal(err)
	}
	is, err := m.Create(ctx, latch.NewSession{Subject: "alice", Claims: []byte(`{"role":"reader"}`)})
	if err != nil {
		b.Fatal(err)
	}
	tok := is.RefreshToken.Reveal()
	b.ReportAllocs()
	for b.Loop() {
		r, err := m.Refresh(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		tok = r.RefreshToken.Reveal()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
}

// TestValidateAllocs enforces the hot-path allocation budget.
func TestValidateAllocs(t *testing.T) {
	m, tok := benchManager(t)
	n := testing.AllocsPerRun(200, func() {
		s, err := m.Validate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		s.Value("role")
	})
	if n > 0 {
		t.Fatalf("Validate allocates %v times per call; the budget is 0", n)
	}
}
