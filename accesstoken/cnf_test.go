package accesstoken

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestConfirmationClaim: a DPoP-bound token carries cnf.jkt (RFC 9449
// §6.1) and the verifier reads it back; a cnf with any other shape is a
// malformed token, never an unbound one.
func TestConfirmationClaim(t *testing.T) {
	f := newFixture(t, 16)
	ctx := context.Background()
	c := f.claim
	c.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	tok, err := f.iss.Issue(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if !strings.Contains(string(payload), `"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`) {
		t.Fatalf("payload %s lacks cnf.jkt", payload)
	}
	got, err := f.v.Verify(ctx, tok)
	if err != nil || got.JKT != c.JKT || got.Extra == nil || strings.Contains(string(got.Extra), "cnf") {
		t.Fatalf("Verify = JKT %q, Extra %s, %v", got.JKT, got.Extra, err)
	}
	plain, _ := f.iss.Issue(ctx, f.claim)
	if got, err := f.v.Verify(ctx, plain); err != nil || got.JKT != "" {
		t.Fatalf("an unbound token: JKT %q, %v", got.JKT, err)
	}
	now := t0.Unix()
	hdr := `{"alg":"EdDSA","kid":"` + f.key.ID() + `","typ":"at+jwt"}`
	if _, err := f.v.Verify(ctx, forge(hdr, `{"iss":"`+testIss+`","sub":"u","aud":"api","exp":`+itoa(now+600)+`,"iat":`+itoa(now)+`,"cnf":{"jkt":"abc"}}`, edSigner(seedKey(1)))); err != nil {
		t.Fatalf("a forged-by-test token with a good cnf: %v (the negative rows below would prove nothing)", err)
	}
	for _, cnf := range []string{`{"x5t#S256":"abc"}`, `{"jkt":"a","jwk":{}}`, `{"jkt":""}`, `{}`, `"jkt"`, `{"jkt":1}`} {
		p := `{"iss":"` + testIss + `","sub":"u","aud":"api","exp":` + itoa(now+600) + `,"iat":` + itoa(now) + `,"cnf":` + cnf + `}`
		if _, err := f.v.Verify(ctx, forge(hdr, p, edSigner(seedKey(1)))); !errors.Is(err, ErrMalformed) {
			t.Errorf("cnf %s: %v, want ErrMalformed", cnf, err)
		}
	}
}
