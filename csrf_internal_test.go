package latch

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"testing/iotest"

	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
)

// TestCSRFKeyIsHMAC checks the stack-buffer HMAC against crypto/hmac for
// random secrets and IDs: a wrong derivation would invalidate every CSRF
// token already handed out.
func TestCSRFKeyIsHMAC(t *testing.T) {
	for range 200 {
		rec := &store.Record{}
		rand.Read(rec.CSRFSecret[:])
		rand.Read(rec.ID[:])
		mac := hmac.New(sha256.New, rec.CSRFSecret[:])
		mac.Write([]byte("latch csrf v1"))
		mac.Write(rec.ID[:])
		if got := csrfKey(&Session{rec: rec}); !bytes.Equal(got[:], mac.Sum(nil)) {
			t.Fatalf("csrfKey = %x, want HMAC %x", got, mac.Sum(nil))
		}
	}
}

// TestAppendCSRFToken checks that appended tokens are fresh maskings of
// the session's key, that nothing of the mask is left in dst's spare
// capacity, and that a failing random source changes nothing.
func TestAppendCSRFToken(t *testing.T) {
	m := &Manager{cfg: Config{Rand: rand.Reader}}
	rec := &store.Record{}
	rand.Read(rec.CSRFSecret[:])
	s := &Session{rec: rec}
	k := csrfKey(s)
	dst := make([]byte, 0, 512)
	dst = append(dst, "x"...)
	a, err := m.AppendCSRFToken(dst, s)
	if err != nil {
		t.Fatal(err)
	}
	tokA := string(a[1:]) // before the next append reuses dst's array
	b, err := m.AppendCSRFToken(dst, s)
	if err != nil {
		t.Fatal(err)
	}
	if !token.CheckCSRF(tokA, &k) || !m.CheckCSRF(s, tokA) {
		t.Fatalf("appended token %q does not unmask to the session's key", tokA)
	}
	if len(tokA) != token.CSRFTokenLen || string(a[:1]) != "x" {
		t.Fatalf("appended %q", a)
	}
	if tokA == string(b[1:]) {
		t.Fatal("two tokens are equal: the mask is not fresh")
	}
	if spare := b[len(b):cap(b)]; bytes.ContainsFunc(spare, func(r rune) bool { return r != 0 }) {
		t.Fatal("the random mask is left in the buffer's spare capacity")
	}
	m.cfg.Rand = iotest.ErrReader(errors.New("no entropy"))
	if out, err := m.AppendCSRFToken(dst, s); err == nil || len(out) != len(dst) {
		t.Fatalf("failing rand: %q, %v; want dst unchanged and an error", out, err)
	}
}

func TestCSRFTokenAllocs(t *testing.T) {
	m := &Manager{cfg: Config{Rand: rand.Reader}}
	s := &Session{rec: &store.Record{}}
	dst := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { m.AppendCSRFToken(dst, s) }); n != 0 {
		t.Fatalf("AppendCSRFToken allocates %v times, want 0", n)
	}
}
