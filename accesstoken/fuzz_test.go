package accesstoken

import (
	"context"
	"encoding/json"
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
