package accesstoken

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAuthContextClaims: auth_time, acr and amr (RFC 9068 §2.2.1) are
// issued after sid, read back into their fields (not Extra), and omitted
// when unset.
func TestAuthContextClaims(t *testing.T) {
	f := newFixture(t, 16)
	ctx := context.Background()
	c := f.claim
	c.AuthTime = t0.Add(-90*time.Second + 400*time.Millisecond) // issued in whole seconds
	c.ACR, c.AMR = "urn:latch:mfa", []string{"pwd", "otp"}
	tok, err := f.iss.Issue(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	want := `"sid":"ses_abc","auth_time":1893455910,"acr":"urn:latch:mfa","amr":["pwd","otp"],"role":"admin"`
	if !strings.Contains(string(payload), want) {
		t.Fatalf("payload %s lacks %s", payload, want)
	}
	for range 2 { // the second Verify answers from the cache
		got, err := f.v.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !got.AuthTime.Equal(c.AuthTime.Truncate(time.Second)) || got.ACR != c.ACR || !slices.Equal(got.AMR, c.AMR) {
			t.Fatalf("verified auth context: %v %q %q", got.AuthTime, got.ACR, got.AMR)
		}
		if string(got.Extra) != `{"role":"admin","n":[1,2]}` {
			t.Fatalf("Extra = %s", got.Extra)
		}
		got.AMR[0] = "X" // the cache hands out copies
	}

	plain, _ := f.iss.Issue(ctx, f.claim)
	got, err := f.v.Verify(ctx, plain)
	if err != nil || !got.AuthTime.IsZero() || got.ACR != "" || got.AMR != nil {
		t.Fatalf("a token without auth context: %+v %v", got, err)
	}
	c.AMR = []string{"p\xffd"}
	if _, err := f.iss.Issue(ctx, c); !errors.Is(err, ErrBadClaims) {
		t.Fatalf("amr that is not UTF-8: %v", err)
	}
}

// TestAuthContextClaimsMalformed: a signed token whose auth_time, acr or
// amr has the wrong type or repeats is refused, never half-read.
func TestAuthContextClaimsMalformed(t *testing.T) {
	f := newFixture(t, -1)
	sign := edSigner(seedKey(1))
	hdr := `{"alg":"EdDSA","kid":"` + f.key.ID() + `","typ":"at+jwt"}`
	base := `{"iss":"` + testIss + `","sub":"u","aud":"` + testAud + `","exp":1893456600,"iat":1893456000`
	for name, extra := range map[string]string{
		"amr a string":        `,"amr":"pwd"`,
		"amr of numbers":      `,"amr":[1]`,
		"amr unterminated":    `,"amr":["pwd"`,
		"amr trailing comma":  `,"amr":["pwd",]`,
		"amr twice":           `,"amr":["pwd"],"amr":["otp"]`,
		"acr a number":        `,"acr":1`,
		"acr twice":           `,"acr":"a","acr":"b"`,
		"auth_time a string":  `,"auth_time":"1893456000"`,
		"auth_time twice":     `,"auth_time":1,"auth_time":2`,
		"amr of 65 values":    `,"amr":[` + strings.TrimSuffix(strings.Repeat(`"m",`, 65), ",") + `]`,
		"auth_time not a num": `,"auth_time":true`,
	} {
		tok := forge(hdr, base+extra+`}`, sign)
		if _, err := f.v.Verify(context.Background(), tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := forge(hdr, base+`,"amr":[],"acr":"","auth_time":1893455000}`, sign)
	c, err := f.v.Verify(context.Background(), ok)
	if err != nil || c.AMR != nil || c.ACR != "" || c.AuthTime.Unix() != 1893455000 {
		t.Fatalf("empty amr and acr: %+v %v", c, err)
	}
}
