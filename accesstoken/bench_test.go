package accesstoken

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// The benchmarks below verify one typical latch access token (about 330
// bytes: iss sub aud exp iat jti sid and a role claim). Verifier benchmarks
// disable the verified-token cache except BenchmarkVerifyCached, so they
// measure the full check.

func benchToken(b *testing.B, k *Key) (string, *Verifier) {
	b.Helper()
	keys, _ := NewStaticKeys(k)
	iss, _ := NewIssuer(IssuerConfig{Keys: keys, Issuer: testIss, Audience: testAud})
	now := time.Now()
	tok, err := iss.Issue(context.Background(), Claims{Subject: "user-1234567890", IssuedAt: now,
		ExpiresAt: now.Add(time.Hour), ID: "4pTfZ0mBq3wz1xY0", SessionID: "ses_AAECAwQFBgcICQoLDA0ODw",
		Extra: []byte(`{"role":"admin"}`)})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := NewVerifier(VerifierConfig{Keys: keys, Issuer: testIss, Audience: testAud, CacheSize: -1})
	return tok, v
}

func signingParts(tok string) (msg, sig []byte) {
	i := strings.LastIndexByte(tok, '.')
	sig, _ = base64.RawURLEncoding.DecodeString(tok[i+1:])
	return []byte(tok[:i]), sig
}

// BenchmarkRawEd25519Verify is the floor: the signature check alone.
func BenchmarkRawEd25519Verify(b *testing.B) {
	priv := seedKey(1)
	tok, _ := benchToken(b, mustKey(NewEd25519Key("", priv)))
	msg, sig := signingParts(tok)
	pub := priv.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkRawHMAC is the HS256 floor: HMAC-SHA256 over the signing input
// with a fresh hmac.New, as a hand-written check would do.
func BenchmarkRawHMAC(b *testing.B) {
	secret := bytes.Repeat([]byte{3}, 32)
	tok, _ := benchToken(b, mustKey(NewHS256Key("", secret)))
	msg, sig := signingParts(tok)
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, secret)
		m.Write(msg)
		if !hmac.Equal(m.Sum(nil), sig) {
			b.Fatal("bad mac")
		}
	}
}

func benchVerify(b *testing.B, k *Key) {
	tok, v := benchToken(b, k)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEdDSA(b *testing.B) { benchVerify(b, mustKey(NewEd25519Key("", seedKey(1)))) }

func BenchmarkVerifyHS256(b *testing.B) {
	benchVerify(b, mustKey(NewHS256Key("", bytes.Repeat([]byte{3}, 32))))
}

// BenchmarkVerifyCached verifies the same EdDSA token repeatedly through
// the verified-token cache, with a Keyring as the key set.
func BenchmarkVerifyCached(b *testing.B) {
	ctx := context.Background()
	kr, err := OpenKeyring(ctx, KeyringConfig{})
	if err != nil {
		b.Fatal(err)
	}
	iss, _ := NewIssuer(IssuerConfig{Keys: kr, Issuer: testIss, Audience: testAud})
	v, _ := NewVerifier(VerifierConfig{Keys: kr, Issuer: testIss, Audience: testAud})
	tok, _ := iss.Issue(ctx, Claims{Subject: "user-1234567890", ID: "4pTfZ0mBq3wz1xY0",
		SessionID: "ses_AAECAwQFBgcICQoLDA0ODw", Extra: []byte(`{"role":"admin"}`)})
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueEdDSA(b *testing.B) {
	keys, _ := NewStaticKeys(mustKey(NewEd25519Key("", seedKey(1))))
	iss, _ := NewIssuer(IssuerConfig{Keys: keys, Issuer: testIss, Audience: testAud})
	c := Claims{Subject: "user-1234567890", ID: "4pTfZ0mBq3wz1xY0", SessionID: "ses_AAECAwQFBgcICQoLDA0ODw",
		Extra: []byte(`{"role":"admin"}`), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Issue(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRatio runs raw and latch in alternating batches and reports the
// ratio of their total times, which stays meaningful on a busy machine
// where absolute ns/op drift between separate benchmarks.
func benchRatio(b *testing.B, raw, latch func()) {
	const batch = 8
	var tRaw, tLatch time.Duration
	i := 0
	for b.Loop() {
		for k := range 2 {
			start := time.Now()
			if (i+k)%2 == 0 {
				for range batch {
					raw()
				}
				tRaw += time.Since(start)
			} else {
				for range batch {
					latch()
				}
				tLatch += time.Since(start)
			}
		}
		i++
	}
	b.ReportMetric(float64(tLatch)/float64(tRaw), "latch/raw")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRatioEdDSA: latch's full EdDSA verification relative to a bare
// ed25519.Verify of the same token (target ≤ 1.2).
func BenchmarkRatioEdDSA(b *testing.B) {
	priv := seedKey(1)
	tok, v := benchToken(b, mustKey(NewEd25519Key("", priv)))
	msg, sig := signingParts(tok)
	pub := priv.Public().(ed25519.PublicKey)
	ctx := context.Background()
	benchRatio(b, func() { ed25519.Verify(pub, msg, sig) }, func() { v.Verify(ctx, tok) })
}

// BenchmarkRatioHS256: latch's full HS256 verification relative to a bare
// HMAC-SHA256 check of the same token (target ≤ 3).
func BenchmarkRatioHS256(b *testing.B) {
	secret := bytes.Repeat([]byte{3}, 32)
	tok, v := benchToken(b, mustKey(NewHS256Key("", secret)))
	msg, sig := signingParts(tok)
	ctx := context.Background()
	benchRatio(b, func() {
		m := hmac.New(sha256.New, secret)
		m.Write(msg)
		hmac.Equal(m.Sum(nil), sig)
	}, func() { v.Verify(ctx, tok) })
}
