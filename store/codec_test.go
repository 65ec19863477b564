package store_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// fullRecord sets every field, with times at nanosecond precision in a
// non-UTC zone.
func fullRecord(t testing.TB) *store.Record {
	t.Helper()
	id, err := store.ParseID("ses_AAECAwQFBgcICQoLDA0ODxAR")
	if err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 23, 15, 4, 5, 123456789, zone)
	r := &store.Record{
		ID:      id,
		Subject: "user-ü-42",
		Version: 7,
		Refresh: store.Refresh{
			RotatedAt:  at.Add(-time.Minute),
			Generation: 3,
		},
		CreatedAt:     at.Add(-time.Hour),
		AuthTime:      at.Add(-time.Hour + 1),
		LastSeenAt:    at,
		IdleExpiresAt: at.Add(30 * time.Minute),
		ExpiresAt:     at.Add(23 * time.Hour),
		RevokedAt:     at.Add(time.Second),
		RevokeReason:  store.ReasonAdmin,
		IP:            "2001:db8::1",
		UserAgent:     "Mozilla/5.0",
		Data:          []byte(`{"cart":3}`),
		Claims:        []byte(`{"role":"admin"}`),
		ACR:           "urn:latch:acr:mfa",
		AMR:           []string{"pwd", "otp"},
	}
	for i := range store.HashLen {
		r.VerifierHash[i] = byte(i)
		r.CSRFSecret[i] = byte(i + 32)
		r.Refresh.Key[i] = byte(i + 64)
		r.Refresh.Current[i] = byte(i + 96)
		r.Refresh.Previous[i] = byte(i + 128)
		r.JKT[i] = byte(i + 160)
	}
	return r
}

// equalRecords compares records field by field (times with Equal; nil and
// empty byte slices alike).
func equalRecords(a, b *store.Record) bool {
	times := func(r *store.Record) []time.Time {
		return []time.Time{r.Refresh.RotatedAt, r.CreatedAt, r.AuthTime, r.LastSeenAt, r.IdleExpiresAt, r.ExpiresAt, r.RevokedAt}
	}
	ta, tb := times(a), times(b)
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	return a.ID == b.ID && a.Subject == b.Subject && a.Version == b.Version &&
		a.VerifierHash == b.VerifierHash && a.CSRFSecret == b.CSRFSecret &&
		a.Refresh.Key == b.Refresh.Key && a.Refresh.Current == b.Refresh.Current &&
		a.Refresh.Previous == b.Refresh.Previous && a.Refresh.Generation == b.Refresh.Generation &&
		a.RevokeReason == b.RevokeReason && a.IP == b.IP && a.UserAgent == b.UserAgent &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Claims, b.Claims) &&
		a.ACR == b.ACR && slices.Equal(a.AMR, b.AMR) && a.JKT == b.JKT
}

func TestCodecRoundTrip(t *testing.T) {
	full := fullRecord(t)
	minimal := &store.Record{ID: full.ID, Subject: "a"}
	empty := fullRecord(t)
	empty.Data, empty.Claims, empty.AMR = []byte{}, []byte{}, []string{}
	jktOnly := &store.Record{ID: full.ID, Subject: "a", JKT: full.JKT}
	amrOnly := &store.Record{ID: full.ID, Subject: "a", AMR: []string{"hwk"}}
	for name, r := range map[string]*store.Record{"full": full, "minimal": minimal, "empty values": empty, "JKT only": jktOnly, "AMR only": amrOnly} {
		t.Run(name, func(t *testing.T) {
			b, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got store.Record
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !equalRecords(&got, r) {
				t.Errorf("round trip changed the record:\n got %+v\nwant %+v", got, *r)
			}
			for _, tm := range []time.Time{got.CreatedAt, got.LastSeenAt, got.RevokedAt, got.Refresh.RotatedAt} {
				if !tm.IsZero() && tm.Location() != time.UTC {
					t.Errorf("decoded time in %v, want UTC", tm.Location())
				}
			}
			if (got.Data == nil) != (len(r.Data) == 0) {
				t.Errorf("decoded Data nil=%v for %d bytes encoded; empty values decode as nil", got.Data == nil, len(r.Data))
			}
			if (got.AMR == nil) != (len(r.AMR) == 0) {
				t.Errorf("decoded AMR nil=%v for %d values encoded; an empty AMR decodes as nil", got.AMR == nil, len(r.AMR))
			}
			// The record does not retain b.
			clear(b)
			if !equalRecords(&got, r) {
				t.Errorf("decoded record changed when the input buffer was overwritten")
			}
		})
	}
}

// TestCodecVersion1: a record encoded before ACR, AMR and JKT existed
// (version 1, captured from that code) still decodes, and is written back
// as version 3: the same layout followed by its checksum.
func TestCodecVersion1(t *testing.T) {
	const golden = "01000102030405060708090a0b0c0d0e0f101100000000000000030100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000018eab4d8e5e47f1518eab4d8e5e47f1518eab4d8e5e47f1518eab81f169d1f1518eb036d77337f15000000000000000005616c69636500093139322e302e322e3102756100077b2261223a317d"
	b, _ := hex.DecodeString(golden)
	var r store.Record
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary of a version 1 record: %v", err)
	}
	if r.Subject != "alice" || r.Version != 3 || r.IP != "192.0.2.1" || string(r.Claims) != `{"a":1}` ||
		r.ACR != "" || r.AMR != nil || r.JKT != [32]byte{} {
		t.Errorf("version 1 record decoded wrongly: %+v", r)
	}
	again, err := r.MarshalBinary()
	if err != nil || !bytes.Equal(again, seal(b)) {
		t.Errorf("a version 1 record does not encode as version 3 with its checksum (err %v):\n got %x\nwant %x", err, again, seal(b))
	}
	full, _ := fullRecord(t).MarshalBinary()
	if full[0] != 4 {
		t.Errorf("a record with ACR, AMR and JKT encodes as version %d, want 4", full[0])
	}
	// The same record in version 2 (no checksum), as older binaries wrote it.
	v2 := unsealed(full)
	v2[0] = 2
	var got store.Record
	if err := got.UnmarshalBinary(v2); err != nil || !equalRecords(&got, fullRecord(t)) {
		t.Errorf("version 2 record: %v, or decoded wrongly", err)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// unsealed is an encoding without its checksum.
func unsealed(b []byte) []byte { return bytes.Clone(b[:len(b)-4]) }

// seal turns body (an encoding without checksum, of version 1 to 4) into
// the checksummed form: version 1 or 2 becomes 3 or 4, and the CRC-32C of
// the whole is appended. Other version bytes are kept.
func seal(body []byte) []byte {
	b := bytes.Clone(body)
	if len(b) > 0 && (b[0] == 1 || b[0] == 2) {
		b[0] += 2
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// legacy turns body into the unchecksummed form of older binaries.
func legacy(body []byte) []byte {
	b := bytes.Clone(body)
	if len(b) > 0 && (b[0] == 3 || b[0] == 4) {
		b[0] -= 2
	}
	return b
}

// TestCodecChecksum: every single-bit flip, and every swap of two adjacent
// bytes that differ, in an encoded record is ErrCorrupt.
func TestCodecChecksum(t *testing.T) {
	good, _ := fullRecord(t).MarshalBinary()
	sentinel := fullRecord(t)
	check := func(what string, b []byte) {
		t.Helper()
		got := *sentinel
		if err := got.UnmarshalBinary(b); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: UnmarshalBinary: %v, want ErrCorrupt", what, err)
		}
		if !equalRecords(&got, sentinel) {
			t.Errorf("%s: a failed UnmarshalBinary modified the record", what)
		}
	}
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			check(fmt.Sprintf("bit %d of byte %d flipped", bit, i), b)
		}
		if i+1 < len(good) && good[i] != good[i+1] {
			b := bytes.Clone(good)
			b[i], b[i+1] = b[i+1], b[i]
			check(fmt.Sprintf("bytes %d and %d swapped", i, i+1), b)
		}
	}
}

func TestAppendBinary(t *testing.T) {
	r := fullRecord(t)
	want, _ := r.MarshalBinary()
	got, err := r.AppendBinary([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[6:], want) {
		t.Errorf("AppendBinary did not append the MarshalBinary encoding")
	}
}

// TestCodecCorrupt: blobs that are not one record are ErrCorrupt, with a
// valid checksum (version 3 and 4) and without one (version 1 and 2).
func TestCodecCorrupt(t *testing.T) {
	enc, _ := fullRecord(t).MarshalBinary()
	good := unsealed(enc)
	// The offset of the first length-prefixed field (Subject): version,
	// ID, Version, 5 hashes, RotatedAt, Generation, 6 times.
	const fixed = 1 + store.IDLen + 8 + 5*store.HashLen + 8 + 4 + 6*8
	if good[fixed] != byte(len("user-ü-42")) {
		t.Fatalf("layout assumption broken: byte %d is %d", fixed, good[fixed])
	}
	withLen := func(n uint64) []byte {
		b := append([]byte(nil), good[:fixed]...)
		return binary.AppendUvarint(b, n)
	}
	cases := map[string][]byte{
		"unknown version":     append([]byte{5}, good[1:]...),
		"version 1 with ext":  append([]byte{1}, good[1:]...),
		"version 2 no ext":    v2WithoutExt(t),
		"AMR doubled space":   withAMR(t, "pwd  otp"),
		"AMR leading space":   withAMR(t, " pwd"),
		"version zero":        append([]byte{0}, good[1:]...),
		"trailing byte":       append(bytes.Clone(good), 0),
		"length over cap":     append(withLen(1<<20+1), make([]byte, 1<<20+1)...),
		"length past the end": withLen(1000),
		"length overflow":     append(bytes.Clone(good[:fixed]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"huge length":         binary.AppendUvarint(bytes.Clone(good[:fixed]), 1<<63),
	}
	for n := range len(good) {
		cases["truncated at "+strconv.Itoa(n)] = good[:n]
	}
	raw := map[string][]byte{"empty": nil, "version alone": {3}, "checksum alone": seal(nil)}
	for name, b := range cases {
		raw[name+", checksummed"] = seal(b)
		raw[name+", unchecksummed"] = legacy(b)
	}
	for n := range len(enc) {
		raw["checksummed, truncated at "+strconv.Itoa(n)] = enc[:n]
	}
	sentinel := fullRecord(t)
	for name, b := range raw {
		got := *sentinel
		err := got.UnmarshalBinary(b)
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: UnmarshalBinary: %v, want ErrCorrupt", name, err)
		}
		if !equalRecords(&got, sentinel) {
			t.Errorf("%s: a failed UnmarshalBinary modified the record", name)
		}
	}
}

// v2WithoutExt is a version 4 encoding (without checksum) whose ACR, AMR
// and JKT are all empty: such a record is written as version 3, so this
// form is refused.
func v2WithoutExt(t *testing.T) []byte {
	enc, _ := (&store.Record{ID: fullRecord(t).ID, Subject: "a"}).MarshalBinary()
	b := append(unsealed(enc), 0, 0)
	b = append(b, make([]byte, 32)...)
	b[0] = 4
	return b
}

// withAMR is fullRecord's encoding (without checksum) with its AMR field
// replaced by joined.
func withAMR(t *testing.T, joined string) []byte {
	r := fullRecord(t)
	enc, _ := r.MarshalBinary()
	good := unsealed(enc)
	tail := 1 + len("pwd otp") + 32
	b := bytes.Clone(good[:len(good)-tail])
	b = binary.AppendUvarint(b, uint64(len(joined)))
	b = append(b, joined...)
	return append(b, r.JKT[:]...)
}

// canonical reports whether every length prefix in an encoded record is a
// minimal uvarint; the codec refuses overlong ones (see
// TestCodecRefusesOverlongVarint).
func canonical(b []byte) bool {
	const fixed = 1 + store.IDLen + 8 + 5*store.HashLen + 8 + 4 + 6*8
	if len(b) < fixed {
		return true
	}
	fields := 6
	if b[0] == 2 || b[0] == 4 {
		fields = 8
	}
	b = b[fixed:]
	for range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return true
		}
		if k != len(binary.AppendUvarint(nil, n)) {
			return false
		}
		if uint64(len(b)-k) < n {
			return true
		}
		b = b[k+int(n):]
	}
	return true
}

// TestCodecRefusesOverlongVarint: a length written as an overlong uvarint
// (0x80 0x00 for 0) would give one record two encodings.
func TestCodecRefusesOverlongVarint(t *testing.T) {
	r := &store.Record{ID: fullRecord(t).ID, Subject: "a"}
	enc, _ := r.MarshalBinary()
	b := unsealed(enc)
	// The encoding ends with the empty Data and Claims: 0x00 0x00. Write
	// Data's length in its overlong form.
	over := append(bytes.Clone(b[:len(b)-2]), 0x80, 0x00, 0x00)
	if canonical(over) {
		t.Fatal("test input is canonical")
	}
	for _, blob := range [][]byte{seal(over), legacy(over)} {
		var got store.Record
		if err := got.UnmarshalBinary(blob); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("UnmarshalBinary of an overlong length: %v, want ErrCorrupt", err)
		}
	}
}

func TestCodecRefusesUnencodable(t *testing.T) {
	for name, r := range map[string]*store.Record{
		"year 3000":  {Subject: "a", ExpiresAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 1000":  {Subject: "a", CreatedAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"huge field": {Subject: "a", Data: make([]byte, 1<<20+1)},
		"empty AMR":  {Subject: "a", AMR: []string{"pwd", ""}},
		"AMR space":  {Subject: "a", AMR: []string{"p w d"}},
	} {
		if _, err := r.MarshalBinary(); !errors.Is(err, store.ErrUnencodable) {
			t.Errorf("%s: MarshalBinary: %v, want ErrUnencodable", name, err)
		}
	}
}

func FuzzRecordUnmarshal(f *testing.F) {
	full, _ := fullRecord(f).MarshalBinary()
	minimal, _ := (&store.Record{ID: fullRecord(f).ID, Subject: "a"}).MarshalBinary()
	f.Add(full)
	f.Add(minimal)
	f.Add(legacy(unsealed(full)))
	f.Add(legacy(unsealed(minimal)))
	f.Add(full[:100])
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r store.Record
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("UnmarshalBinary: %v, want ErrCorrupt", err)
			}
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded record: %v", err)
		}
		// A record decoded from an older version is written back with
		// a checksum, else exactly as it was read.
		want := b
		if b[0] == 1 || b[0] == 2 {
			want = seal(b)
		}
		if canonical(b) && !bytes.Equal(enc, want) {
			t.Fatalf("decoded record re-encodes differently:\n in %x\nout %x", b, enc)
		}
		var r2 store.Record
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !equalRecords(&r, &r2) {
			t.Fatalf("decode(encode(r)) != r")
		}
		if enc2, _ := r2.MarshalBinary(); !bytes.Equal(enc2, enc) {
			t.Fatalf("encoding is not a fixed point")
		}
	})
}
