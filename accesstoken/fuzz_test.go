package accesstoken

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: the verifier never panics, and never accepts a token the
// oracle (the issuer below) did not sign.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, 16)
	ctx := context.Background()
	signed := map[string]bool{}
	add := func(c Claims) {
		tok, err := fx.iss.Issue(ctx, c)
		if err != nil {
			f.Fatal(err)
		}
		signed[tok] = true
		f.Add(tok)
	}
	add(fx.claim)
	c := fx.claim
	c.Extra, c.NotBefore = []byte(`{"a":{"b":[1,"\u00e9",null,true]}}`), t0
	add(c)
	c.Subject = "ünïcode \"quoted\"\n"
	add(c)
	f.Add("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
	f.Add(enc(`{"alg":"none","kid":"x","typ":"at+jwt"}`) + "." + enc(`{}`) + ".")
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := fx.v.Verify(ctx, tok)
		if err == nil && !signed[tok] {
			t.Fatalf("accepted a token the oracle never signed: %q", tok)
		}
		if err != nil && (cl.Subject != "" || cl.Extra != nil) {
			t.Fatal("claims returned with an error")
		}
		if err == nil && cl.Extra != nil && !json.Valid(cl.Extra) {
			t.Fatalf("Extra is not valid JSON: %q", cl.Extra)
		}
		VerifySignature(tok, fx.key)
	})
}

// FuzzVerifyAlgorithms: with ES256, RS256 and HS256 keys in one key set,
// the verifier never panics and accepts only tokens the oracle signed,
// whatever alg, kid and signature the input pairs.
func FuzzVerifyAlgorithms(f *testing.F) {
	ctx := context.Background()
	clk := newClock(t0)
	ecp, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	secret := bytes.Repeat([]byte{9}, 32)
	keys := []*Key{mustKey(NewES256Key("es", ecp)), mustKey(NewRS256Key("rs", testRSAKey())), mustKey(NewHS256Key("hs", secret))}
	ks, _ := NewStaticKeys(keys...)
	v, _ := NewVerifier(VerifierConfig{Keys: ks, Issuer: testIss, Audience: testAud, Now: clk.Now, CacheSize: -1})
	signed := map[string]bool{}
	c := Claims{Subject: "u", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), SessionID: "ses_x"}
	for _, k := range keys {
		one, _ := NewStaticKeys(k)
		iss, _ := NewIssuer(IssuerConfig{Keys: one, Issuer: testIss, Audience: testAud})
		tok, err := iss.Issue(ctx, c)
		if err != nil {
			f.Fatal(err)
		}
		signed[tok] = true
		f.Add(tok)
		// The same signing input under the other algorithms' headers.
		_, rest, _ := strings.Cut(tok, ".")
		for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA", "PS256", "none"} {
			f.Add(enc(`{"alg":"`+alg+`","kid":"`+k.ID()+`","typ":"at+jwt"}`) + "." + rest)
		}
	}
	der := x509.MarshalPKCS1PublicKey(&testRSAKey().PublicKey)
	claims := `{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(t0.Unix()+600) + `,"iat":` + itoa(t0.Unix()) + `}`
	f.Add(forge(`{"alg":"HS256","kid":"rs","typ":"at+jwt"}`, claims, hmacSigner(der)))
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := v.Verify(ctx, tok)
		if err == nil && !signed[tok] {
			t.Fatalf("accepted a token the oracle never signed: %q", tok)
		}
		if err != nil && cl.Subject != "" {
			t.Fatal("claims returned with an error")
		}
		for _, k := range keys {
			VerifySignature(tok, k)
		}
	})
}

// FuzzJSON: whatever the scanner accepts, encoding/json accepts too, and
// CheckExtraClaims never panics and only accepts objects.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2,{"b":null}]`, `"\ud83d\ude00"`, `-0.5e+3`, `{"a":"\u00"}`, `{"role":"x","n":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := scanner{b: b}
		s.ws()
		if s.skip(0) {
			s.ws()
			if s.i == len(b) && !json.Valid(b) {
				t.Fatalf("scanner accepted invalid JSON %q", b)
			}
		}
		if CheckExtraClaims(b) == nil && len(b) > 0 {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("CheckExtraClaims accepted %q: %v", b, err)
			}
			for _, r := range ReservedClaims {
				if _, ok := m[r]; ok {
					t.Fatalf("reserved %q accepted", r)
				}
			}
			out, err := compactExtra(nil, b)
			if err != nil || (len(out) > 0 && !json.Valid([]byte("{"+strings.TrimPrefix(string(out), ",")+"}"))) {
				t.Fatalf("compacted %q to invalid %q", b, out)
			}
		}
	})
}

// FuzzRoundTrip: any claims Issue accepts verify back to the same values.
func FuzzRoundTrip(f *testing.F) {
	fx := newFixture(f, -1)
	f.Add("user", "jti", "ses", []byte(`{"role":"x"}`), int64(600))
	f.Add("ü\"\\\u2028", "", "", []byte(nil), int64(1))
	f.Fuzz(func(t *testing.T, sub, jti, sid string, extra []byte, ttl int64) {
		if ttl <= 0 || ttl > 1e6 {
			return
		}
		c := Claims{Subject: sub, ID: jti, SessionID: sid, Extra: extra, IssuedAt: t0, ExpiresAt: t0.Add(time.Duration(ttl) * time.Second)}
		tok, err := fx.iss.Issue(context.Background(), c)
		if err != nil {
			return
		}
		got, err := fx.v.Verify(context.Background(), tok)
		if err != nil {
			if len(tok) > MaxTokenSize {
				return
			}
			t.Fatalf("issued token refused: %v", err)
		}
		if got.Subject != sub || got.ID != jti || got.SessionID != sid || !got.ExpiresAt.Equal(c.ExpiresAt) {
			t.Fatalf("round trip changed claims: %+v", got)
		}
		if (len(got.Extra) == 0) != (CheckExtraClaims(extra) == nil && compactLen(extra) == 0) {
			t.Fatalf("extra %q came back as %q", extra, got.Extra)
		}
	})
}

func compactLen(extra []byte) int {
	out, _ := compactExtra(nil, extra)
	return len(out)
}

// FuzzUnmarshalRing: the stored keyring's decoder never panics, refuses
// with errRingFormat or errRingChecksum, and what it reads stores back (with
// its checksum) as a blob that reads the same.
func FuzzUnmarshalRing(f *testing.F) {
	sr := storedRing{Format: 1, Issuer: "https://latch.example", Keys: []storedKey{
		{Kid: "k1", Alg: "EdDSA", Created: 1, Activates: 2, Public: []byte{1, 2, 3}, Sealed: []byte{4, 5}},
		{Kid: "k0", Alg: "ES256", Created: 0, Activates: 0, Public: []byte{9}, Revoked: 7},
	}}
	js, err := json.Marshal(sr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(appendRingChecksum(js))
	f.Add(js) // as binaries before the checksum wrote it
	f.Add([]byte(`{"crc32c":"00000000",}`))
	f.Add([]byte(`{"format":2,"keys":[]}`))
	f.Fuzz(func(t *testing.T, blob []byte) {
		sr, err := unmarshalRing(blob)
		if err != nil {
			if err != errRingFormat && err != errRingChecksum {
				t.Fatalf("unmarshalRing: %v", err)
			}
			return
		}
		js, err := json.Marshal(sr)
		if err != nil {
			t.Fatal(err)
		}
		again, err := unmarshalRing(appendRingChecksum(js))
		// An empty sealed key is omitted when stored again (omitempty),
		// so it reads back as nil: the same to the keyring.
		for _, r := range []*storedRing{&sr, &again} {
			for i := range r.Keys {
				if len(r.Keys[i].Sealed) == 0 {
					r.Keys[i].Sealed = nil
				}
			}
		}
		if err != nil || !reflect.DeepEqual(again, sr) {
			t.Fatalf("stored again, the ring reads back as %+v, %v; want %+v", again, err, sr)
		}
	})
}
