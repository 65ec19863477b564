package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
)

// IDPrefix starts the text form of every session ID.
const IDPrefix = "ses_"

// IDLen is the length of an ID in bytes: a 2-byte subject tag followed by
// 16 bytes (128 bits) from a cryptographically secure random source.
const IDLen = 2 + 16

// idTextLen is len(IDPrefix) + base64url(IDLen bytes), unpadded.
const idTextLen = len(IDPrefix) + (IDLen*8+5)/6

// ID identifies a session. It is a public handle, safe to show in listings,
// logs and the JWT "sid" claim; it grants nothing without the secret part of a
// token.
//
// The first two bytes are a tag derived from the session's subject (see
// [SubjectTag]). Every session of one subject therefore carries the same tag,
// which lets a clustered store such as Redis Cluster place a subject's
// sessions and its index in one hash slot, so that create-with-eviction and
// revoke-all stay atomic. The tag reveals only that two sessions probably
// belong to the same subject; it does not reveal the subject.
//
// The zero ID is invalid.
type ID [IDLen]byte

// NewID returns a fresh ID for a session of subject, reading 16 bytes from
// rand, which must be a cryptographically secure source.
func NewID(subject string, rand io.Reader) (ID, error) {
	var id ID
	binary.BigEndian.PutUint16(id[:2], SubjectTag(subject))
	if _, err := io.ReadFull(rand, id[2:]); err != nil {
		return ID{}, err
	}
	return id, nil
}

// SubjectTag is the 16-bit tag shared by every session ID of subject.
func SubjectTag(subject string) uint16 {
	h := sha256.Sum256([]byte(subject))
	return binary.BigEndian.Uint16(h[:2])
}

// Tag returns the subject tag the ID carries.
func (id ID) Tag() uint16 { return binary.BigEndian.Uint16(id[:2]) }

// IsZero reports whether id is the zero (invalid) ID.
func (id ID) IsZero() bool { return id == ID{} }

// String returns the text form "ses_" + base64url(id).
func (id ID) String() string {
	var b [idTextLen]byte
	copy(b[:], IDPrefix)
	base64.RawURLEncoding.Encode(b[len(IDPrefix):], id[:])
	return string(b[:])
}

// MarshalText implements [encoding.TextMarshaler].
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ErrBadID is returned by [ParseID] for anything that is not the text form of an ID.
var ErrBadID = errors.New("latch/store: malformed session ID")

// ParseID parses the text form of an ID. It never echoes its input in errors.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != idTextLen || s[:len(IDPrefix)] != IDPrefix {
		return id, ErrBadID
	}
	n, err := base64.RawURLEncoding.Strict().Decode(id[:], []byte(s[len(IDPrefix):]))
	if err != nil || n != IDLen || id.IsZero() {
		return ID{}, ErrBadID
	}
	return id, nil
}
