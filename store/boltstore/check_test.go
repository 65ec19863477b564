package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

// newTestStore opens a fresh store in a temporary directory and, when the
// test ends, checks the file's consistency and closes it.
func newTestStore(t testing.TB, opts *Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data", "latch.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := checkDB(s.db); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// checkDB runs bbolt's page-level check and latch's index invariants:
//   - every record decodes, under its own ID;
//   - every record has exactly one expiry entry, keyed by its deadline, and
//     every expiry entry belongs to such a record;
//   - every unrevoked record has a subject entry, and every subject entry
//     names an existing, unrevoked record of that subject.
func checkDB(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		b, err := bucketsOf(tx)
		if err != nil {
			return err
		}
		recs := map[store.ID]*store.Record{}
		err = b.rec.ForEach(func(k, v []byte) error {
			r := new(store.Record)
			if err := r.UnmarshalBinary(v); err != nil || !bytes.Equal(k, r.ID[:]) {
				return fmt.Errorf("record %x does not decode under its key", k)
			}
			recs[r.ID] = r
			return nil
		})
		if err != nil {
			return err
		}
		expiries := map[store.ID]int{}
		err = b.exp.ForEach(func(k, _ []byte) error {
			if len(k) != 8+store.IDLen {
				return fmt.Errorf("expiry key %x has length %d", k, len(k))
			}
			id := store.ID(k[8:])
			r := recs[id]
			if r == nil {
				return fmt.Errorf("expiry entry for missing record %v", id)
			}
			if !bytes.Equal(deadlineKey(r), k) {
				return fmt.Errorf("expiry entry of %v does not match its deadline", id)
			}
			expiries[id]++
			return nil
		})
		if err != nil {
			return err
		}
		indexed := map[store.ID]bool{}
		err = b.sub.ForEach(func(k, _ []byte) error {
			if len(k) < 2+store.IDLen {
				return fmt.Errorf("short subject key %x", k)
			}
			n := int(binary.BigEndian.Uint16(k))
			if len(k) != 2+n+store.IDLen {
				return fmt.Errorf("subject key %x has the wrong length", k)
			}
			id := store.ID(k[2+n:])
			r := recs[id]
			if r == nil {
				return fmt.Errorf("subject entry for missing record %v", id)
			}
			if r.Subject != string(k[2:2+n]) {
				return fmt.Errorf("subject entry of %v under another subject", id)
			}
			if r.Revoked() {
				return fmt.Errorf("revoked record %v still in its subject index", id)
			}
			indexed[id] = true
			return nil
		})
		if err != nil {
			return err
		}
		for id, r := range recs {
			if expiries[id] != 1 {
				return fmt.Errorf("record %v has %d expiry entries", id, expiries[id])
			}
			if !r.Revoked() && !indexed[id] {
				return fmt.Errorf("unrevoked record %v missing from its subject index", id)
			}
		}
		return nil
	})
}

// newRecord returns a record of subject created at created with the usual
// deadlines (30 min idle, 24 h absolute) and random secrets.
func newRecord(t testing.TB, subject string, created time.Time) *store.Record {
	t.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Record{
		ID:            id,
		Subject:       subject,
		CreatedAt:     created,
		AuthTime:      created,
		LastSeenAt:    created,
		IdleExpiresAt: created.Add(30 * time.Minute),
		ExpiresAt:     created.Add(24 * time.Hour),
		IP:            "192.0.2.1",
		UserAgent:     "boltstore-test",
		Data:          []byte(`{"k":"v"}`),
	}
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}
