package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"time"
)

// codecVersion is the first byte of every encoded record. Decoders refuse
// versions they do not know rather than guessing. Version 2 is version 1
// followed by ACR, AMR and JKT. Versions 3 and 4 are versions 1 and 2
// followed by a checksum, and the only ones written: a record without ACR,
// AMR and JKT is written as version 3. Versions 1 and 2, written by older
// binaries, are still read (without a checksum to verify).
const (
	codecVersion1 = 1
	codecVersion2 = 2
	codecSummed1  = 3
	codecSummed2  = 4
)

// The checksum is CRC-32C (Castagnoli) of every byte before it, big-endian.
// It is there against accidental corruption (a flipped bit on disk or in
// memory, a torn or misdirected write: bbolt does not checksum its data
// pages, Redis and the SQL servers keep values as given), not against
// someone who can write to the store, who can write a valid record anyway.
// CRC-32C detects every burst error up to 32 bits and every error of up to
// 3 bits in a record of this size, costs 4 bytes, and hash/crc32 computes
// it with the CPU's CRC instructions (SSE 4.2, ARMv8), so it adds next to
// nothing to a Get; a truncated SHA-256 would be no stronger against
// accidents and costs far more per byte.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const checksumLen = 4

// maxField caps every variable-length field of an encoded record, so a corrupt
// or hostile blob cannot make a decoder allocate without bound.
const maxField = 1 << 20

// ErrCorrupt is returned by [Record.UnmarshalBinary] for a blob that is not a
// record this package encoded.
var ErrCorrupt = errors.New("latch/store: corrupt record")

// MarshalBinary encodes r in a compact, versioned binary form shared by the
// stores that keep records as blobs.
func (r *Record) MarshalBinary() ([]byte, error) {
	n := 304 + len(r.Subject) + len(r.IP) + len(r.UserAgent) + len(r.Data) + len(r.Claims) + len(r.RevokeReason)
	if r.hasAuthExt() {
		n += 40 + len(r.ACR) + len(strings.Join(r.AMR, " "))
	}
	return r.AppendBinary(make([]byte, 0, n))
}

// hasAuthExt reports whether r needs the version 4 encoding.
func (r *Record) hasAuthExt() bool {
	return r.ACR != "" || len(r.AMR) > 0 || r.JKT != [32]byte{}
}

// AppendBinary appends the encoding of r to b.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	if err := checkEncodable(r); err != nil {
		return b, err
	}
	start := len(b)
	ext := r.hasAuthExt()
	if ext {
		b = append(b, codecSummed2)
	} else {
		b = append(b, codecSummed1)
	}
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = append(b, r.VerifierHash[:]...)
	b = append(b, r.CSRFSecret[:]...)
	b = append(b, r.Refresh.Key[:]...)
	b = append(b, r.Refresh.Current[:]...)
	b = append(b, r.Refresh.Previous[:]...)
	b = appendTime(b, r.Refresh.RotatedAt)
	b = binary.BigEndian.AppendUint32(b, r.Refresh.Generation)
	for _, t := range [...]time.Time{r.CreatedAt, r.AuthTime, r.LastSeenAt, r.IdleExpiresAt, r.ExpiresAt, r.RevokedAt} {
		b = appendTime(b, t)
	}
	for _, s := range [...]string{r.Subject, r.RevokeReason, r.IP, r.UserAgent} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range [...][]byte{r.Data, r.Claims} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if ext {
		for _, s := range [...]string{r.ACR, strings.Join(r.AMR, " ")} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = append(b, r.JKT[:]...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary decodes a record encoded by [Record.MarshalBinary]. A
// blob whose checksum does not match is [ErrCorrupt], as is any blob that
// is not exactly one encoded record, so a corrupted record is never read as
// a session (nor as another one). The record does not retain b.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return ErrCorrupt
	}
	ver := b[0]
	switch ver {
	case codecVersion1, codecVersion2:
	case codecSummed1, codecSummed2:
		n := len(b) - checksumLen
		if n < 1 || crc32.Checksum(b[:n], castagnoli) != binary.BigEndian.Uint32(b[n:]) {
			return ErrCorrupt
		}
		b = b[:n]
	default:
		return ErrCorrupt
	}
	ext := ver == codecVersion2 || ver == codecSummed2
	d := decoder{b: b[1:]}
	var v Record
	d.bytes(v.ID[:])
	v.Version = d.uint64()
	d.bytes(v.VerifierHash[:])
	d.bytes(v.CSRFSecret[:])
	d.bytes(v.Refresh.Key[:])
	d.bytes(v.Refresh.Current[:])
	d.bytes(v.Refresh.Previous[:])
	v.Refresh.RotatedAt = d.time()
	v.Refresh.Generation = d.uint32()
	for _, t := range [...]*time.Time{&v.CreatedAt, &v.AuthTime, &v.LastSeenAt, &v.IdleExpiresAt, &v.ExpiresAt, &v.RevokedAt} {
		*t = d.time()
	}
	for _, s := range [...]*string{&v.Subject, &v.RevokeReason, &v.IP, &v.UserAgent} {
		*s = string(d.field())
	}
	for _, s := range [...]*[]byte{&v.Data, &v.Claims} {
		if f := d.field(); len(f) > 0 {
			*s = append([]byte(nil), f...)
		}
	}
	if ext {
		v.ACR = string(d.field())
		var ok bool
		if v.AMR, ok = splitAMR(string(d.field())); !ok {
			return ErrCorrupt
		}
		d.bytes(v.JKT[:])
		// A record without them is written as version 1 (or 3): one
		// encoding each.
		if !v.hasAuthExt() {
			return ErrCorrupt
		}
	}
	if d.bad || len(d.b) != 0 {
		return ErrCorrupt
	}
	*r = v
	return nil
}

func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// Times a record can hold: Unix nanoseconds in an int64.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// ErrUnencodable is returned by [Record.MarshalBinary] for a record with a
// time outside the years 1678–2262, a field over 1 MiB, or an AMR value that
// is empty or holds a space.
var ErrUnencodable = errors.New("latch/store: record cannot be encoded")

func checkEncodable(r *Record) error {
	for _, t := range [...]time.Time{r.Refresh.RotatedAt, r.CreatedAt, r.AuthTime, r.LastSeenAt, r.IdleExpiresAt, r.ExpiresAt, r.RevokedAt} {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return ErrUnencodable
		}
	}
	for _, n := range [...]int{len(r.Subject), len(r.RevokeReason), len(r.IP), len(r.UserAgent), len(r.Data), len(r.Claims), len(r.ACR)} {
		if n > maxField {
			return ErrUnencodable
		}
	}
	// AMR is kept joined by spaces (package amr): a value that is empty or
	// holds a space would not read back as written.
	n := 0
	for _, m := range r.AMR {
		if m == "" || strings.IndexByte(m, ' ') >= 0 {
			return ErrUnencodable
		}
		n += len(m) + 1
	}
	if n > maxField {
		return ErrUnencodable
	}
	return nil
}

// splitAMR decodes AMR joined by spaces: "" is nil, an empty value (a form
// the encoder never writes) is false. The same form as store/internal/amr,
// which this leaf package does not import: its importers' dependency rules
// allow store alone.
func splitAMR(s string) ([]string, bool) {
	if s == "" {
		return nil, true
	}
	ms := strings.Split(s, " ")
	return ms, !slices.Contains(ms, "")
}

// appendTime encodes t as [UnixNano]; the zero Time encodes as 0, so an
// instant exactly at the Unix epoch reads back as the zero Time.
func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(UnixNano(t)))
}

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) bytes(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *decoder) uint64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) time() time.Time { return FromUnixNano(int64(d.uint64())) }

func (d *decoder) field() []byte {
	if d.bad {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	// Refusing overlong varints keeps the encoding of a record unique.
	if k <= 0 || n > maxField || k != uvarintLen(n) {
		d.bad = true
		return nil
	}
	d.b = d.b[k:]
	return d.take(int(n))
}
