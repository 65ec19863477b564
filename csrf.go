package latch

import (
	"crypto/sha256"

	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
)

// csrfKey derives the session's synchronizer value from its CSRF secret and
// ID: HMAC-SHA256(secret, "latch csrf v1" ‖ ID). The secret itself never
// leaves the store. It is computed with sha256.Sum256 over stack buffers,
// which gives crypto/hmac's value (TestCSRFKeyIsHMAC) without its two
// heap-allocated hash states; this runs on every session-token verify.
func csrfKey(s *Session) (k token.CSRFKey) {
	const label = "latch csrf v1"
	const block = sha256.BlockSize
	var inner [block + len(label) + store.IDLen]byte
	var outer [block + sha256.Size]byte
	defer clear(inner[:]) // both hold the key, padded
	defer clear(outer[:])
	for i := range block {
		inner[i], outer[i] = 0x36, 0x5c
	}
	for i, c := range s.rec.CSRFSecret { // 32 bytes: shorter than a block, used as is
		inner[i] ^= c
		outer[i] ^= c
	}
	copy(inner[block:], label)
	copy(inner[block+len(label):], s.rec.ID[:])
	sum := sha256.Sum256(inner[:])
	copy(outer[block:], sum[:])
	return sha256.Sum256(outer[:])
}

// CSRFToken returns a synchronizer token for forms and the X-CSRF-Token
// header of s's pages. Each call returns a different string (the value is
// masked with fresh randomness, so it cannot be recovered by compression
// side channels such as BREACH); all of them are valid until the session is
// renewed or ends.
func (m *Manager) CSRFToken(s *Session) (string, error) {
	k := csrfKey(s)
	return token.MaskCSRF(m.cfg.Rand, &k)
}

// AppendCSRFToken appends a fresh CSRF token for s, as CSRFToken returns
// it, to dst: for answers built in a buffer, without a string per token.
// On error dst is returned unchanged.
func (m *Manager) AppendCSRFToken(dst []byte, s *Session) ([]byte, error) {
	k := csrfKey(s)
	defer clear(k[:])
	return token.AppendMaskCSRF(dst, m.cfg.Rand, &k)
}

// CheckCSRF reports whether tok is a CSRF token issued for s. The comparison
// takes constant time.
func (m *Manager) CheckCSRF(s *Session, tok string) bool {
	k := csrfKey(s)
	return token.CheckCSRF(tok, &k)
}
