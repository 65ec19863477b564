package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

// Interface checks.
var (
	_ store.Store       = (*Store)(nil)
	_ store.FreshReader = (*Store)(nil)
	_ store.Sweeper     = (*Store)(nil)
	_ store.KeyStore    = (*Store)(nil)
	_ store.Pinger      = (*Store)(nil)
)

// errCorrupt is returned for a stored record or index entry that does not
// decode. It matches store.ErrUnavailable and store.ErrCorrupt.
var errCorrupt = fmt.Errorf("boltstore: stored data does not decode: %w: %w", store.ErrUnavailable, store.ErrCorrupt)

// errLayout is returned when a bucket is missing from an opened file.
var errLayout = errors.New("bucket missing from data file")

// present is the value of every index entry. It is not empty because bbolt
// does not tell an empty value from a missing key.
var present = []byte{1}

// buckets are the record buckets of one transaction, and the cache its
// writes of records drop from.
type buckets struct {
	rec, sub, exp *bolt.Bucket
	cache         *recordCache
}

func (s *Store) bucketsOf(tx *bolt.Tx) (buckets, error) {
	b, err := bucketsOf(tx)
	b.cache = s.cache
	return b, err
}

// bucketsOf is Store.bucketsOf without a cache to keep in step: for
// reading a file (and for tests).
func bucketsOf(tx *bolt.Tx) (buckets, error) {
	b := buckets{tx.Bucket(bucketRecords), tx.Bucket(bucketSubjects), tx.Bucket(bucketExpiry), noCache}
	if b.rec == nil || b.sub == nil || b.exp == nil {
		return b, errLayout
	}
	return b, nil
}

// load returns the record stored under id, or nil if there is none.
func (b buckets) load(id []byte) (*store.Record, error) {
	v := b.rec.Get(id)
	if v == nil {
		return nil, nil
	}
	r := new(store.Record)
	if err := r.UnmarshalBinary(v); err != nil || !bytes.Equal(r.ID[:], id) {
		return nil, errCorrupt
	}
	return r, nil
}

// put stores rec, which replaces old (nil for a new record), and brings the
// expiry and subject indexes in step: the expiry entry follows the
// deadline, and the subject entry exists exactly while rec is unrevoked.
func (b buckets) put(old, rec *store.Record) error {
	blob, err := rec.MarshalBinary()
	if err != nil {
		return err
	}
	return b.putBlob(old, rec, blob)
}

// putBlob is put with rec already encoded as blob.
func (b buckets) putBlob(old, rec *store.Record, blob []byte) error {
	if err := b.rec.Put(rec.ID[:], blob); err != nil {
		return err
	}
	b.cache.dropOnCommit(b.rec.Tx(), rec.ID)
	nk := deadlineKey(rec)
	if old == nil || !bytes.Equal(deadlineKey(old), nk) {
		if old != nil {
			if err := b.exp.Delete(deadlineKey(old)); err != nil {
				return err
			}
		}
		if err := b.exp.Put(nk, present); err != nil {
			return err
		}
	}
	sk := subjectKey(rec.Subject, rec.ID)
	if rec.Revoked() {
		return b.sub.Delete(sk)
	}
	if old == nil || old.Revoked() || b.sub.Get(sk) == nil {
		return b.sub.Put(sk, present)
	}
	return nil
}

// subjectIDs returns the IDs in subject's index.
func (b buckets) subjectIDs(subject string) ([]store.ID, error) {
	prefix := subjectPrefix(subject)
	var ids []store.ID
	c := b.sub.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+store.IDLen {
			return nil, errCorrupt
		}
		ids = append(ids, store.ID(k[len(prefix):]))
	}
	return ids, nil
}

// Get returns the record with id, revoked or not, or an error matching
// store.ErrNotFound. It reads without writing and never waits for a writer.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if err := ctxErr("get", ctx); err != nil {
		return nil, err
	}
	if rec := s.cache.get(id); rec != nil {
		return rec, nil
	}
	return s.GetFresh(ctx, id)
}

// GetFresh implements [store.FreshReader]: Get reading the file, past the
// record cache (which it then refreshes). The cache is exact, so this
// gives what Get gives; the manager calls it before refusing a token, and
// a refusal is then judged against the file itself.
func (s *Store) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	seq := s.cache.begin()
	var rec *store.Record
	err := s.view(ctx, "get", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if b == nil {
			return errLayout
		}
		v := b.Get(id[:])
		if v == nil {
			return store.ErrNotFound
		}
		r := new(store.Record)
		if err := r.UnmarshalBinary(v); err != nil || r.ID != id {
			return errCorrupt
		}
		rec = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.put(rec, seq)
	return rec, nil
}

// Create stores rec as version 1 and adds it to its subject's index,
// evicting the least recently seen of the subject's other live sessions
// (live at rec.CreatedAt) beyond max, in the same transaction. It refuses
// with an error matching store.ErrInvalid a nil record, a zero ID, a
// subject outside 1..store.MaxSubjectLen bytes, an ID without its
// subject's tag, and a record the codec cannot encode.
func (s *Store) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := store.Validate(rec); err != nil {
		return nil, fmt.Errorf("boltstore: create: %w", err)
	}
	nr := *rec
	nr.Version = 1
	nr.CreatedAt = orNow(nr.CreatedAt)
	now := nr.CreatedAt
	blob, err := nr.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("boltstore: create: %w: %w", store.ErrInvalid, err)
	}
	var evicted []store.ID
	err = s.write(ctx, "create", func(tx *bolt.Tx) error {
		evicted = nil
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		if b.rec.Get(nr.ID[:]) != nil {
			return store.ErrExists
		}
		var victims []*store.Record
		if max > 0 {
			ids, err := b.subjectIDs(nr.Subject)
			if err != nil {
				return err
			}
			var live []*store.Record
			for _, id := range ids {
				r, err := b.load(id[:])
				if err != nil {
					return err
				}
				if r != nil && r.ID != nr.ID && r.Live(now) {
					live = append(live, r)
				}
			}
			n := len(live)
			if nr.Live(now) {
				n++
			}
			if n > max {
				slices.SortFunc(live, leastRecentFirst)
				victims = live[:n-max]
			}
		}
		if err := b.putBlob(nil, &nr, blob); err != nil {
			return err
		}
		evicted, err = b.revokeAll(victims, store.ReasonEvicted, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range evicted {
		s.events.Append(store.RevokeEvents(id, nr.Subject, store.ReasonEvicted, now)...)
	}
	return evicted, nil
}

// leastRecentFirst orders records by LastSeenAt, then CreatedAt, then ID,
// ascending: the order of eviction.
func leastRecentFirst(a, b *store.Record) int {
	if c := a.LastSeenAt.Compare(b.LastSeenAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// Update replaces the stored record with rec if the stored version is
// rec.Version and the record is unrevoked, storing version rec.Version+1.
// ID and Subject are kept as stored.
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.Validate(rec); err != nil {
		return fmt.Errorf("boltstore: update: %w", err)
	}
	nr := *rec
	nr.Subject = "" // the stored one is kept
	renewed := false
	err := s.write(ctx, "update", func(tx *bolt.Tx) error {
		renewed = false
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		old, err := b.load(nr.ID[:])
		if err != nil {
			return err
		}
		if old == nil {
			return store.ErrNotFound
		}
		if old.Version != nr.Version || old.Revoked() {
			return store.ErrConflict
		}
		w := nr
		w.Subject = old.Subject
		w.Version = old.Version + 1
		renewed = w.VerifierHash != old.VerifierHash
		nr.Subject = old.Subject
		return b.put(old, &w)
	})
	if err == nil && renewed {
		s.events.Append(store.Event{Type: store.EventSessionRenewed, SessionID: nr.ID, Subject: nr.Subject, At: nr.LastSeenAt})
	}
	return err
}

// RotateRefresh replaces the refresh state of an unrevoked record whose
// Refresh.Current is r.Expect and records the activity in r. On a mismatch
// it returns the stored record with an error matching store.ErrConflict.
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	if err := encodable("rotate refresh", &store.Record{Refresh: r.Next, LastSeenAt: r.LastSeenAt, IdleExpiresAt: r.IdleExpiresAt}); err != nil {
		return nil, err
	}
	var out *store.Record
	err := s.write(ctx, "rotate refresh", func(tx *bolt.Tx) error {
		out = nil
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		old, err := b.load(r.ID[:])
		if err != nil {
			return err
		}
		if old == nil {
			return store.ErrNotFound
		}
		if old.Revoked() || old.Refresh.Current != r.Expect {
			out = old
			return store.ErrConflict
		}
		w := *old
		w.Refresh = r.Next
		w.LastSeenAt = r.LastSeenAt
		w.IdleExpiresAt = r.IdleExpiresAt
		w.Version++
		if err := b.put(old, &w); err != nil {
			return err
		}
		out = &w
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	return out, err
}

// Revoke marks the record revoked and removes it from its subject's index;
// the record stays as a tombstone until its deadline. Revoking a revoked
// record succeeds and changes nothing.
func (s *Store) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	at = orNow(at)
	if err := store.ValidReason(reason, at); err != nil {
		return fmt.Errorf("boltstore: revoke: %w", err)
	}
	subject := ""
	err := s.write(ctx, "revoke", func(tx *bolt.Tx) error {
		subject = ""
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		old, err := b.load(id[:])
		if err != nil {
			return err
		}
		if old == nil {
			return store.ErrNotFound
		}
		if old.Revoked() {
			return nil
		}
		subject = old.Subject
		return b.put(old, revoked(old, reason, at))
	})
	if err == nil && subject != "" {
		s.events.Append(store.RevokeEvents(id, subject, reason, at)...)
	}
	return err
}

// revokeAll revokes every record of victims and returns their IDs.
func (b buckets) revokeAll(victims []*store.Record, reason string, at time.Time) ([]store.ID, error) {
	var ids []store.ID
	for _, v := range victims {
		if err := b.put(v, revoked(v, reason, at)); err != nil {
			return nil, err
		}
		ids = append(ids, v.ID)
	}
	return ids, nil
}

func revoked(old *store.Record, reason string, at time.Time) *store.Record {
	w := *old
	w.RevokedAt = at
	w.RevokeReason = reason
	w.Version++
	return &w
}

// RevokeSubject revokes, in one transaction, every unrevoked session of
// subject (expired by at or not), except the one with ID except, and
// returns the revoked IDs.
func (s *Store) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := validSubject(subject); err != nil {
		return nil, err
	}
	at = orNow(at)
	if err := store.ValidReason(reason, at); err != nil {
		return nil, fmt.Errorf("boltstore: revoke subject: %w", err)
	}
	var out []store.ID
	err := s.write(ctx, "revoke subject", func(tx *bolt.Tx) error {
		out = nil
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		ids, err := b.subjectIDs(subject)
		if err != nil {
			return err
		}
		var victims []*store.Record
		for _, id := range ids {
			if id == except {
				continue
			}
			r, err := b.load(id[:])
			if err != nil {
				return err
			}
			if r != nil && !r.Revoked() {
				victims = append(victims, r)
			}
		}
		out, err = b.revokeAll(victims, reason, at)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.events.Append(store.Event{Type: store.EventSubjectRevoked, Subject: subject, Except: except, Reason: reason, At: at})
	return out, nil
}

// List returns the subject's sessions live at now, most recently seen
// first (ties: most recently created first). It is a read transaction and
// never waits for writers.
//
// List does not forget index entries of sessions that merely expired at
// now: now is the caller's clock, and a later List with an earlier now must
// still see them (the conformance suite checks this). Revoke removes
// entries at once and Sweep removes those of expired records, so the index
// holds dead entries at most until the next sweep. Only an entry whose
// record is gone (which the store itself never leaves behind) is removed,
// in a separate write transaction.
func (s *Store) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := validSubject(subject); err != nil {
		return nil, err
	}
	now = orNow(now)
	var live []*store.Record
	var stale []store.ID
	err := s.view(ctx, "list", func(tx *bolt.Tx) error {
		live, stale = nil, nil
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		ids, err := b.subjectIDs(subject)
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := b.load(id[:])
			if err != nil {
				return err
			}
			switch {
			case r == nil:
				stale = append(stale, id)
			case r.Live(now):
				live = append(live, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(live, func(a, b *store.Record) int { return -leastRecentFirst(a, b) })
	if len(stale) > 0 {
		if err := s.forget(ctx, subject, stale); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// forget removes the index entries of ids whose records are still missing.
func (s *Store) forget(ctx context.Context, subject string, ids []store.ID) error {
	return s.write(ctx, "list", func(tx *bolt.Tx) error {
		b, err := s.bucketsOf(tx)
		if err != nil {
			return err
		}
		var drop [][]byte
		for _, id := range ids {
			if b.rec.Get(id[:]) == nil {
				drop = append(drop, subjectKey(subject, id))
			}
		}
		for _, k := range drop {
			if err := b.sub.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sweep deletes the records (and tombstones) whose deadline is at or
// before now, with their index entries, and returns how many it deleted.
// It walks the expiry index from its oldest entry and stops at the first
// entry after now, deleting at most Options.SweepBatch records per
// transaction; it checks ctx between transactions.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int, error) {
	total := 0
	limit := sortableTime(orNow(now))
	// The common case, nothing expired, needs no write transaction.
	var due bool
	err := s.view(ctx, "sweep", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExpiry)
		if b == nil {
			return errLayout
		}
		k, _ := b.Cursor().First()
		due = k != nil && (len(k) < 8 || binary.BigEndian.Uint64(k) <= limit)
		return nil
	})
	if err != nil || !due {
		return 0, err
	}
	for {
		n, more := 0, false
		err := s.write(ctx, "sweep", func(tx *bolt.Tx) error {
			n, more = 0, false
			b, err := s.bucketsOf(tx)
			if err != nil {
				return err
			}
			var keys [][]byte
			c := b.exp.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if len(k) >= 8 && binary.BigEndian.Uint64(k) > limit {
					break
				}
				if len(keys) == s.sweepBatch {
					more = true
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := b.exp.Delete(k); err != nil {
					return err
				}
				if len(k) != 8+store.IDLen {
					continue // malformed entry: dropped
				}
				id := k[8:]
				r, err := b.load(id)
				switch {
				case errors.Is(err, store.ErrCorrupt):
					// Expired by its index entry and unreadable: remove it
					// rather than stall every future sweep. A subject entry
					// left behind is forgotten by List.
				case err != nil:
					return err
				case r == nil:
					continue // dangling entry
				case !bytes.Equal(deadlineKey(r), k):
					continue // stale entry; the record has a newer one
				default:
					if err := b.sub.Delete(subjectKey(r.Subject, r.ID)); err != nil {
						return err
					}
				}
				if err := b.rec.Delete(id); err != nil {
					return err
				}
				b.cache.dropOnCommit(tx, store.ID(id))
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
		if err := ctxErr("sweep", ctx); err != nil {
			return total, err
		}
	}
}

// KeyringVersion implements [store.KeyringVersioner]: the stored
// keyring's version. Every online access-token verification asks it, so
// it is read from the file once and then kept in memory: only this
// process writes the file, and SaveKeyring updates it as it commits.
func (s *Store) KeyringVersion(ctx context.Context) (uint64, error) {
	if err := ctxErr("keyring version", ctx); err != nil {
		return 0, err
	}
	if v := s.keyringVersion.Load(); v != 0 {
		return v - 1, nil
	}
	v, err := s.readKeyringVersion(ctx)
	if err == nil {
		// Unless SaveKeyring committed meanwhile (and set it): this read
		// may predate that commit.
		s.keyringVersion.CompareAndSwap(0, v+1)
	}
	return v, err
}

func (s *Store) readKeyringVersion(ctx context.Context) (uint64, error) {
	var version uint64
	err := s.view(ctx, "keyring version", func(tx *bolt.Tx) error {
		version = 0
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errLayout
		}
		v := meta.Get(keyKeyring)
		if v == nil {
			return nil
		}
		if len(v) < 8 {
			return errCorrupt
		}
		version = binary.BigEndian.Uint64(v)
		return nil
	})
	return version, err
}

// LoadKeyring returns the stored keyring blob and its version, or
// (nil, 0, nil) if none was saved.
func (s *Store) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	var blob []byte
	var version uint64
	err := s.view(ctx, "load keyring", func(tx *bolt.Tx) error {
		blob, version = nil, 0
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errLayout
		}
		v := meta.Get(keyKeyring)
		if v == nil {
			return nil
		}
		if len(v) < 8 {
			return errCorrupt
		}
		version = binary.BigEndian.Uint64(v)
		blob = bytes.Clone(v[8:])
		if blob == nil {
			blob = []byte{}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return blob, version, nil
}

// SaveKeyring stores blob as version expect+1 if the stored version is
// expect (0: none saved), and fails with store.ErrConflict otherwise.
func (s *Store) SaveKeyring(ctx context.Context, blob []byte, expect uint64) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(blob)), expect+1)
	v = append(v, blob...)
	return s.write(ctx, "save keyring", func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errLayout
		}
		var cur uint64
		if old := meta.Get(keyKeyring); old != nil {
			if len(old) < 8 {
				return errCorrupt
			}
			cur = binary.BigEndian.Uint64(old)
		}
		if cur != expect {
			return store.ErrConflict
		}
		if err := meta.Put(keyKeyring, v); err != nil {
			return err
		}
		tx.OnCommit(func() { s.keyringVersion.Store(expect + 2) }) // version expect+1, plus one
		return nil
	})
}
