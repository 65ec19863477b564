package redisstore

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/amr"
)

// The value of a record key is a compact binary encoding of the record,
// smaller than store.Record.MarshalBinary so that a session fits in the
// memory budget (the ID lives in the key, the version is a varint, and
// fields that are usually empty cost a bit in a flags byte). The Lua
// scripts in scripts.go read and splice it, so the two must agree:
//
//	1 byte   format (valueFormat)
//	uvarint  Version
//	32       VerifierHash
//	32       CSRFSecret
//	32       Refresh.Key
//	32       Refresh.Current
//	8        CreatedAt      } times are big-endian Unix nanoseconds,
//	8        LastSeenAt     } the zero Time as 0 (as store's codec)
//	8        IdleExpiresAt  }
//	8        ExpiresAt      }
//	1 byte   flags: flagAuth, flagPrev, flagRotated, flagRevoked
//	8        AuthTime           if flagAuth (else AuthTime == CreatedAt)
//	32       Refresh.Previous   if flagPrev (else zero)
//	8        Refresh.RotatedAt  if flagRotated (else zero)
//	8        RevokedAt          if flagRevoked (else zero)
//	uvarint  Refresh.Generation
//	6 × (uvarint length, bytes): Subject, RevokeReason, IP, UserAgent, Data, Claims
//	then, only if the record has any of them (so that older binaries,
//	which refuse trailing bytes, still read every other record):
//	1 byte   ext flags: extACR, extAMR, extJKT (never 0)
//	uvarint length, bytes: ACR       if extACR
//	uvarint length, bytes: AMR       if extAMR (values joined by spaces)
//	32       JKT                     if extJKT
//
//	4        seal (valueSealed only): the first 4 bytes of the SHA-1 of
//	         the record key's member (the ID's 16 random bytes, base64url)
//	         followed by every byte before the seal
//
// The scripts never look past Claims' start and keep everything after the
// fields they splice, so they carry the extension unchanged; they check the
// seal of a value before they rewrite it and seal what they write.
//
// Values of valueLegacy, written by binaries older than the seal, have the
// same layout without it and are still read (with nothing to check); every
// write, by Go or by a script, is sealed.
//
// The seal is a checksum against accidental corruption (a bit flipped in
// a server's memory or in an RDB or AOF file, a tool writing the wrong
// value), not against someone who can write to Redis. It is SHA-1 rather
// than the CRC-32C of store's codec because the scripts must compute it
// too, and redis.sha1hex is the one digest Redis's Lua offers in native
// code; a CRC in Lua would cost tens of microseconds of the server's
// single thread per write. Hashing the member binds a value to its key: a
// value written under another session's key does not pass as that session.
const (
	valueLegacy = 1
	valueSealed = 2
	sealLen     = 4
)

const (
	extACR = 1
	extAMR = 2
	extJKT = 4
)

const (
	flagAuth    = 1
	flagPrev    = 2
	flagRotated = 4
	flagRevoked = 8
)

// maxVarField caps each variable-length field when decoding.
const maxVarField = 1 << 20

// errCorrupt is wrapped in ErrUnavailable: a record that cannot be decoded
// or whose seal does not match is a backend failure, never a session. It
// matches store.ErrCorrupt.
var errCorrupt = fmt.Errorf("redisstore: corrupt record value: %w", store.ErrCorrupt)

// seal computes the seal of body, the value of id's record key up to it.
func seal(id store.ID, body []byte) [sealLen]byte {
	var m [22]byte
	base64.RawURLEncoding.Encode(m[:], id[2:])
	h := sha1.New()
	h.Write(m[:])
	h.Write(body)
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	return [sealLen]byte(sum[:sealLen])
}

// unixNano encodes t as store's codec does: the zero Time as 0.
func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromNano(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// be64 is the 8-byte big-endian form of a time, as the scripts take it.
func be64(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], unixNano(t))
	return string(b[:])
}

// encodeValue appends the value encoding of r, with version v, to b.
func encodeValue(b []byte, r *store.Record, v uint64) []byte {
	start := len(b)
	b = encodeBody(b, r, v)
	sum := seal(r.ID, b[start:])
	return append(b, sum[:]...)
}

// encodeBody appends the value encoding of r up to its seal.
func encodeBody(b []byte, r *store.Record, v uint64) []byte {
	b = append(b, valueSealed)
	b = binary.AppendUvarint(b, v)
	b = append(b, r.VerifierHash[:]...)
	b = append(b, r.CSRFSecret[:]...)
	b = append(b, r.Refresh.Key[:]...)
	b = append(b, r.Refresh.Current[:]...)
	created := unixNano(r.CreatedAt)
	b = binary.BigEndian.AppendUint64(b, created)
	b = binary.BigEndian.AppendUint64(b, unixNano(r.LastSeenAt))
	b = binary.BigEndian.AppendUint64(b, unixNano(r.IdleExpiresAt))
	b = binary.BigEndian.AppendUint64(b, unixNano(r.ExpiresAt))
	var flags byte
	auth := unixNano(r.AuthTime)
	if auth != created {
		flags |= flagAuth
	}
	if r.Refresh.Previous != (store.Hash{}) {
		flags |= flagPrev
	}
	rot := unixNano(r.Refresh.RotatedAt)
	if rot != 0 {
		flags |= flagRotated
	}
	rev := unixNano(r.RevokedAt)
	if rev != 0 {
		flags |= flagRevoked
	}
	b = append(b, flags)
	if flags&flagAuth != 0 {
		b = binary.BigEndian.AppendUint64(b, auth)
	}
	if flags&flagPrev != 0 {
		b = append(b, r.Refresh.Previous[:]...)
	}
	if flags&flagRotated != 0 {
		b = binary.BigEndian.AppendUint64(b, rot)
	}
	if flags&flagRevoked != 0 {
		b = binary.BigEndian.AppendUint64(b, rev)
	}
	b = binary.AppendUvarint(b, uint64(r.Refresh.Generation))
	for _, s := range [...]string{r.Subject, r.RevokeReason, r.IP, r.UserAgent} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [...][]byte{r.Data, r.Claims} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	var ext byte
	if r.ACR != "" {
		ext |= extACR
	}
	if len(r.AMR) > 0 {
		ext |= extAMR
	}
	if r.JKT != [32]byte{} {
		ext |= extJKT
	}
	if ext == 0 {
		return b
	}
	b = append(b, ext)
	if ext&extACR != 0 {
		b = binary.AppendUvarint(b, uint64(len(r.ACR)))
		b = append(b, r.ACR...)
	}
	if ext&extAMR != 0 {
		j := amr.Join(r.AMR)
		b = binary.AppendUvarint(b, uint64(len(j)))
		b = append(b, j...)
	}
	if ext&extJKT != 0 {
		b = append(b, r.JKT[:]...)
	}
	return b
}

// valueDecoder reads a value; any short read sets bad.
type valueDecoder struct {
	b   []byte
	bad bool
}

func (d *valueDecoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *valueDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *valueDecoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *valueDecoder) field() []byte {
	n := d.uvarint()
	if n > maxVarField {
		d.bad = true
		return nil
	}
	return d.take(int(n))
}

// ext decodes the extension after Claims into r; false for one encodeValue
// would not write (no flag, an unknown flag, an empty or unsplittable value).
func (d *valueDecoder) ext(r *store.Record) bool {
	p := d.take(1)
	if p == nil || p[0] == 0 || p[0]&^(extACR|extAMR|extJKT) != 0 {
		return false
	}
	if p[0]&extACR != 0 {
		if r.ACR = string(d.field()); r.ACR == "" {
			return false
		}
	}
	if p[0]&extAMR != 0 {
		var ok bool
		if r.AMR, ok = amr.Split(string(d.field())); !ok || r.AMR == nil {
			return false
		}
	}
	if p[0]&extJKT != 0 {
		copy(r.JKT[:], d.take(32))
		if r.JKT == [32]byte{} {
			return false
		}
	}
	return !d.bad
}

// decodeValue decodes the value of the record key of id.
func decodeValue(id store.ID, b []byte) (*store.Record, error) {
	if len(b) == 0 {
		return nil, errCorrupt
	}
	switch b[0] {
	case valueSealed:
		n := len(b) - sealLen
		if n < 1 || seal(id, b[:n]) != [sealLen]byte(b[n:]) {
			return nil, errCorrupt
		}
		b = b[:n]
	case valueLegacy:
	default:
		return nil, errCorrupt
	}
	d := valueDecoder{b: b[1:]}
	var r0 store.Record // decoded here, copied into the allocation below
	r := &r0
	r.ID = id
	r.Version = d.uvarint()
	copy(r.VerifierHash[:], d.take(32))
	copy(r.CSRFSecret[:], d.take(32))
	copy(r.Refresh.Key[:], d.take(32))
	copy(r.Refresh.Current[:], d.take(32))
	created := d.u64()
	r.CreatedAt = fromNano(created)
	r.LastSeenAt = fromNano(d.u64())
	r.IdleExpiresAt = fromNano(d.u64())
	r.ExpiresAt = fromNano(d.u64())
	var flags byte
	if p := d.take(1); p != nil {
		flags = p[0]
	}
	if flags&^(flagAuth|flagPrev|flagRotated|flagRevoked) != 0 {
		return nil, errCorrupt
	}
	r.AuthTime = r.CreatedAt
	if flags&flagAuth != 0 {
		r.AuthTime = fromNano(d.u64())
	}
	if flags&flagPrev != 0 {
		copy(r.Refresh.Previous[:], d.take(32))
	}
	if flags&flagRotated != 0 {
		r.Refresh.RotatedAt = fromNano(d.u64())
	}
	if flags&flagRevoked != 0 {
		r.RevokedAt = fromNano(d.u64())
	}
	gen := d.uvarint()
	if gen > 1<<32-1 {
		return nil, errCorrupt
	}
	r.Refresh.Generation = uint32(gen)
	// One allocation for the four strings.
	var lens [4]int
	var parts [4][]byte
	total := 0
	for i := range parts {
		parts[i] = d.field()
		lens[i] = len(parts[i])
		total += lens[i]
	}
	data, claims := d.field(), d.field()
	if len(d.b) > 0 && !d.bad {
		if !d.ext(r) {
			return nil, errCorrupt
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil, errCorrupt
	}
	// The record and the bytes of its strings, Data and Claims in one
	// allocation: the strings are a view of bytes nothing else refers to
	// and nothing writes after this, Data and Claims are capped slices of
	// the bytes after them.
	rec, buf := allocRecord(total + len(data) + len(claims))
	*rec = *r
	for _, p := range parts {
		buf = append(buf, p...)
	}
	off := 0
	for i, dst := range [...]*string{&rec.Subject, &rec.RevokeReason, &rec.IP, &rec.UserAgent} {
		if lens[i] > 0 {
			*dst = unsafe.String(&buf[off], lens[i])
		}
		off += lens[i]
	}
	if len(data) > 0 {
		rec.Data = append(buf[total:total:total+len(data)], data...)
	}
	if len(claims) > 0 {
		rec.Claims = append(buf[total+len(data):total+len(data):total+len(data)+len(claims)], claims...)
	}
	return rec, nil
}

// allocRecord returns a zero record and an empty buffer of capacity n, in
// one allocation for the sizes most sessions have. store.Record is 552
// bytes, and Go puts an 8-byte header before an object of more than 512
// bytes with pointers: a tail of up to 16 bytes fits the record's own
// 576-byte size class for free, 80 the 640-byte one, 336 the 896-byte one.
func allocRecord(n int) (*store.Record, []byte) {
	switch {
	case n == 0:
		return new(store.Record), nil
	case n <= 16:
		p := new(struct {
			r store.Record
			b [16]byte
		})
		return &p.r, p.b[:0:n]
	case n <= 80:
		p := new(struct {
			r store.Record
			b [80]byte
		})
		return &p.r, p.b[:0:n]
	case n <= 336:
		p := new(struct {
			r store.Record
			b [336]byte
		})
		return &p.r, p.b[:0:n]
	}
	return new(store.Record), make([]byte, 0, n)
}

// ceilMillis is t in Unix milliseconds rounded up, and at least 1: the
// PEXPIREAT of a record whose deadline is t (a key must never vanish
// while its record is still live; PXAT 0 is refused by Redis).
func ceilMillis(t time.Time) int64 {
	if t.IsZero() {
		return 1
	}
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return max(ms, 1)
}

// floorMillis is t in Unix milliseconds rounded down: the index score.
func floorMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 < 0 {
		ms--
	}
	return ms
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// member is the index member (and record key suffix) of id: the base64url
// form of its 16 random bytes. The 2-byte tag is in the key's hash tag.
func member(id store.ID) string {
	return base64.RawURLEncoding.EncodeToString(id[2:])
}

// parseMember rebuilds an ID from its subject tag and index member.
func parseMember(tag uint16, m string) (store.ID, error) {
	var id store.ID
	binary.BigEndian.PutUint16(id[:2], tag)
	if len(m) != base64.RawURLEncoding.EncodedLen(len(id)-2) {
		return id, errCorrupt
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(id[2:], []byte(m)); err != nil || n != len(id)-2 {
		return id, errCorrupt
	}
	return id, nil
}
