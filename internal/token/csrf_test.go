package token

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

const anonVector = "e08a18378d6c81023c4e3f72b3445072a85668b5770c3dc6ebff8c5219b13f8d"

// TestAnonCSRFKeyVector pins the anonymous key to HMAC-SHA256(s, "latch
// anon csrf v1") (docs/protocol.md section 2), which the Node and Python
// clients compute too. anonVector was computed with openssl:
//
//	printf 'latch anon csrf v1' | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102…1f
func TestAnonCSRFKeyVector(t *testing.T) {
	var s [AnonCSRFSecretLen]byte
	for i := range s {
		s[i] = byte(i)
	}
	k := AnonCSRFKey(&s)
	if got := hex.EncodeToString(k[:]); got != anonVector {
		t.Fatalf("AnonCSRFKey = %s, want %s", got, anonVector)
	}
	if c := EncodeAnonCSRF(&s); c != "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" {
		t.Fatalf("cookie value %s", c)
	}
}

func TestMaskCSRF(t *testing.T) {
	var k, other CSRFKey
	rand.Read(k[:])
	rand.Read(other[:])
	a, err := MaskCSRF(rand.Reader, &k)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MaskCSRF(rand.Reader, &k)
	if a == b || len(a) != 86 || !CheckCSRF(a, &k) || !CheckCSRF(b, &k) {
		t.Fatalf("maskings %q %q", a, b)
	}
	if CheckCSRF(a, &other) {
		t.Fatal("a token matched another key")
	}
	for _, bad := range []string{"", a[:85], a + "A", strings.Replace(a, a[:1], "+", 1), a[:85] + "B"} {
		if CheckCSRF(bad, &k) {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := MaskCSRF(bytes.NewReader(make([]byte, 10)), &k); err == nil {
		t.Fatal("a short random read was not an error")
	}
}

// FuzzCheckCSRF: any string CheckCSRF accepts is the canonical encoding of
// a masking of the key, and the anonymous cookie parser accepts exactly
// the canonical encodings of 32 bytes.
func FuzzCheckCSRF(f *testing.F) {
	var k CSRFKey
	tok, _ := MaskCSRF(rand.Reader, &k)
	f.Add(tok)
	f.Add(tok[:43])
	f.Add(strings.Repeat("A", 86))
	f.Add(strings.Repeat("A", 85) + "B")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if CheckCSRF(s, &k) {
			b, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil || len(b) != 64 || base64.RawURLEncoding.EncodeToString(b) != s || !bytes.Equal(b[:32], b[32:]) {
				t.Fatalf("accepted %q", s)
			}
		}
		if sec, ok := ParseAnonCSRF(s); ok && EncodeAnonCSRF(&sec) != s {
			t.Fatalf("accepted a non-canonical cookie %q", s)
		}
	})
}
