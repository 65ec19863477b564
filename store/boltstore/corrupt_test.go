package boltstore

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// TestBitFlipInDataFile: bbolt does not checksum its data pages, so the
// record codec does. Every single-bit flip in a stored record, made in the
// data file through bbolt with the store closed, makes that record
// ErrUnavailable (and ErrCorrupt) after reopening, never a session with a
// changed field; another session in the same file reads back unchanged.
func TestBitFlipInDataFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latch.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := newRecord(t, "alice", t0), newRecord(t, "bob", t0)
	alice.ACR, alice.AMR = "urn:latch:acr:mfa", []string{"pwd", "otp"}
	mustCreate(t, s, alice, 0)
	mustCreate(t, s, bob, 0)
	wantBob := mustGet(t, s, bob.ID)
	s.Close()

	edit := func(f func(v []byte) []byte) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketRecords)
			return b.Put(alice.ID[:], f(bytes.Clone(b.Get(alice.ID[:]))))
		}); err != nil {
			t.Fatal(err)
		}
	}
	var good []byte
	edit(func(v []byte) []byte { good = bytes.Clone(v); return v })

	check := func(what string) {
		t.Helper()
		s, err := Open(path, nil)
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		defer s.Close()
		if got, err := s.Get(t.Context(), alice.ID); got != nil || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: Get of the corrupted record = %+v, %v; want ErrUnavailable", what, got, err)
		}
		if got, err := s.Get(t.Context(), bob.ID); err != nil || !sameRecord(t, got, wantBob) {
			t.Errorf("%s: Get of another session = %+v, %v; want it unchanged", what, got, err)
		}
	}
	// Reopening the file for every bit costs too much; flip one bit in
	// every byte, cycling through the bit positions, and all 8 bits of the
	// first bytes after the version (the ID, then Version).
	for i := range good {
		bits := []int{i % 8}
		if i > 0 && i < 9 {
			bits = []int{0, 1, 2, 3, 4, 5, 6, 7}
		}
		for _, bit := range bits {
			edit(func(v []byte) []byte { v[i] ^= 1 << bit; return v })
			check("byte " + strconv.Itoa(i) + " bit " + strconv.Itoa(bit))
			edit(func([]byte) []byte { return bytes.Clone(good) })
		}
	}
}

// sameRecord compares records by their encoding.
func sameRecord(t *testing.T, a, b *store.Record) bool {
	t.Helper()
	ea, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ea, eb)
}

// boltValue is a Corrupter on a record's value in the open store's file,
// edited through bbolt beside the store (bbolt checksums only its meta
// pages, so such a flip is what a bad disk sector reads back as).
type boltValue struct{}

func (boltValue) Size(t *testing.T, st store.Store, id store.ID) int {
	var n int
	if err := st.(*Store).db.View(func(tx *bolt.Tx) error {
		n = len(tx.Bucket(bucketRecords).Get(id[:]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (boltValue) Flip(t *testing.T, st store.Store, id store.ID, i int, mask byte) {
	if err := st.(*Store).db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v := bytes.Clone(b.Get(id[:]))
		v[i] ^= mask
		return b.Put(id[:], v)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionClause(t *testing.T) {
	// Without the record cache, which would serve the record it decoded
	// (and checked) before the damage, until the next write of it.
	storetest.RunCorruption(t, func(t *testing.T) store.Store { return newTestStore(t, &Options{CacheBytes: -1}) }, boltValue{})
}
