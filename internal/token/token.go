// Package token encodes, parses and hashes latch's opaque session and refresh
// tokens.
//
// A token is a kind prefix followed by base64url(ID ‖ secret ‖ checksum):
//
//	lts_…  session token (cookie)
//	ltr_…  refresh token
//
// The ID is the session's public handle; the 32-byte secret is never stored,
// only its hash. The 4-byte checksum (CRC-32C over the prefix and payload)
// lets parsers reject garbage, truncation and a token of the other kind
// without a store read. It is not a MAC: authenticity comes from comparing the
// secret's hash with the stored one in constant time.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"

	"github.com/latch-sessions/latch/store"
)

// Kind tells session tokens and refresh tokens apart.
type Kind uint8

const (
	Session Kind = iota + 1
	Refresh
)

const (
	SessionPrefix = "lts_"
	RefreshPrefix = "ltr_"
	prefixLen     = 4

	// SecretLen is the length of a token's secret part.
	SecretLen = 32
	sumLen    = 4
	rawLen    = store.IDLen + SecretLen + sumLen // 54: a multiple of 3, so no padding
	// Len is the length of every token's text form.
	Len = prefixLen + rawLen/3*4
)

// Secret is a token's secret part.
type Secret [SecretLen]byte

// ErrMalformed is returned for anything that is not a well-formed token of
// the expected kind. It never includes the input.
var ErrMalformed = errors.New("latch: malformed token")

func (k Kind) prefix() string {
	if k == Refresh {
		return RefreshPrefix
	}
	return SessionPrefix
}

// NewSecret reads a fresh secret from rand.
func NewSecret(rand io.Reader) (Secret, error) {
	var s Secret
	_, err := io.ReadFull(rand, s[:])
	return s, err
}

// Encode returns the text form of a token of kind k.
func Encode(k Kind, id store.ID, secret Secret) string {
	var raw [rawLen]byte
	copy(raw[:], id[:])
	copy(raw[store.IDLen:], secret[:])
	binary.BigEndian.PutUint32(raw[store.IDLen+SecretLen:], checksum(k, raw[:store.IDLen+SecretLen]))
	var out [Len]byte
	copy(out[:], k.prefix())
	base64.RawURLEncoding.Encode(out[prefixLen:], raw[:])
	return string(out[:])
}

// Parse splits a token of kind k into its ID and secret. It reads no store
// and does not allocate.
func Parse(k Kind, s string) (store.ID, Secret, error) {
	var id store.ID
	var secret Secret
	if len(s) != Len || s[:prefixLen] != k.prefix() {
		return id, secret, ErrMalformed
	}
	var raw [rawLen + 2]byte
	if !decode(&raw, s[prefixLen:]) {
		return id, secret, ErrMalformed
	}
	if binary.BigEndian.Uint32(raw[store.IDLen+SecretLen:]) != checksum(k, raw[:store.IDLen+SecretLen]) {
		return id, secret, ErrMalformed
	}
	copy(id[:], raw[:store.IDLen])
	copy(secret[:], raw[store.IDLen:])
	if id.IsZero() {
		return store.ID{}, Secret{}, ErrMalformed
	}
	return id, secret, nil
}

// checksum is CRC-32C over the prefix and payload, computed slicing-by-8 in
// Go: crc32.Update's assembly would make the caller's stack buffers escape,
// and the hot path must not allocate.
func checksum(k Kind, payload []byte) uint32 {
	c := prefixCRC[k]
	for len(payload) >= 8 {
		c ^= binary.LittleEndian.Uint32(payload)
		c = crcTab[7][byte(c)] ^ crcTab[6][byte(c>>8)] ^ crcTab[5][byte(c>>16)] ^ crcTab[4][c>>24] ^
			crcTab[3][payload[4]] ^ crcTab[2][payload[5]] ^ crcTab[1][payload[6]] ^ crcTab[0][payload[7]]
		payload = payload[8:]
	}
	for _, b := range payload {
		c = crcTab[0][byte(c)^b] ^ c>>8
	}
	return ^c
}

// crcTab holds the slicing-by-8 tables for the Castagnoli polynomial.
var crcTab = func() (t [8][256]uint32) {
	t[0] = *crc32.MakeTable(crc32.Castagnoli)
	for i := range 256 {
		c := t[0][i]
		for j := 1; j < 8; j++ {
			c = t[0][byte(c)] ^ c>>8
			t[j][i] = c
		}
	}
	return t
}()

// prefixCRC is the running (non-finalised) CRC after each kind's prefix.
var prefixCRC = func() (p [3]uint32) {
	for _, k := range []Kind{Session, Refresh} {
		c := ^uint32(0)
		for _, b := range []byte(k.prefix()) {
			c = crcTab[0][byte(c)^b] ^ c>>8
		}
		p[k] = c
	}
	return p
}()

// decode is strict, allocation-free base64url decoding of a token's
// payload (the text after the prefix) into raw, whose last two bytes are
// scratch. Eight characters at a time make six bytes, and every character
// is looked at whatever the input, with one test of the accumulated table
// bits at the end instead of a branch per character: the validation path
// decodes a token on every request.
func decode(raw *[rawLen + 2]byte, src string) bool {
	const _ uint = -(rawLen % 6) // whole groups of eight characters
	if len(src) != rawLen/3*4 {
		return false
	}
	var bad byte
	for k := 0; k < rawLen/6; k++ {
		s := src[8*k : 8*k+8]
		c0, c1, c2, c3 := decodeMap[s[0]], decodeMap[s[1]], decodeMap[s[2]], decodeMap[s[3]]
		c4, c5, c6, c7 := decodeMap[s[4]], decodeMap[s[5]], decodeMap[s[6]], decodeMap[s[7]]
		bad |= c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7
		v := uint64(c0)<<58 | uint64(c1)<<52 | uint64(c2)<<46 | uint64(c3)<<40 |
			uint64(c4)<<34 | uint64(c5)<<28 | uint64(c6)<<22 | uint64(c7)<<16
		binary.BigEndian.PutUint64(raw[6*k:], v)
	}
	return bad&0xc0 == 0
}

var decodeMap = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		m[alphabet[i]] = byte(i)
	}
	return m
}()

// Hash returns the value stored for a secret of kind k. The kind is mixed in
// so a session secret can never match a refresh hash or the reverse.
func Hash(k Kind, s Secret) store.Hash {
	var b [1 + SecretLen]byte
	b[0] = byte(k)
	copy(b[1:], s[:])
	return sha256.Sum256(b[:])
}

// Equal compares two hashes in constant time: the XOR of every word,
// ORed together, tested once (subtle.ConstantTimeCompare does the same a
// byte at a time, eight times the work on the validation path).
func Equal(a, b store.Hash) bool {
	var x uint64
	for i := 0; i < len(a); i += 8 {
		x |= binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
	}
	return x == 0
}

// NextRefresh derives the refresh secret that replaces parent in the family
// keyed by key. Deriving rather than drawing the successor makes a rotation
// idempotent: every request presenting the same parent gets the same child,
// and the chain lets the manager recognise an ancestor of the live token.
func NextRefresh(key *[32]byte, parent Secret) Secret {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("latch refresh v1"))
	m.Write(parent[:])
	var next Secret
	m.Sum(next[:0])
	return next
}
