// Package memstore is the in-memory reference implementation of
// [store.Store]: for tests and single-process development, and the model
// the other backends are checked against (it passes package storetest).
//
//	s := memstore.New()
//	go func() { for range time.Tick(time.Minute) { s.Sweep(ctx, time.Now()) } }()
//
// Nothing survives the process; use the bbolt store for that.
//
// # Concurrency
//
// A Store is safe for concurrent use. Records live in 64 shards, each a map
// guarded by its own lock. A record's shard is chosen by the subject tag its
// ID carries ([store.ID.Tag]), so every session of a subject, and that
// subject's index, share one shard and one lock: Create with eviction and
// RevokeSubject are atomic by holding it, with no lock ordering to get wrong.
//
// Stored records are immutable (copy-on-write): every write publishes a new
// *[store.Record] and never modifies one it has published. Get therefore
// returns the stored pointer itself under a read lock, without copying or
// allocating; callers must treat it as read-only, as the Store contract says.
//
// # Expiry
//
// Each shard keeps a min-heap of its records' deadlines, so [Store.Sweep]
// deletes expired records and tombstones in O(k log n) for k expired records,
// never scanning the rest. The subject index holds exactly the unrevoked,
// unswept records: Revoke and RevokeSubject remove entries at once, Sweep
// removes expired ones, and List and eviction skip entries that are not live
// at the caller's now. List does not forget entries itself, so a record whose
// deadline a later Update extends is never lost from its subject's index.
//
// Stored times are normalized to UTC without a monotonic clock reading, as
// a store that serializes records would return them.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/eventbus"
)

const (
	numShards = 64
	// sweepBatch bounds how many records Sweep deletes per lock hold, so a
	// mass expiry does not stall validation on a shard.
	sweepBatch = 256
)

// Store is an in-memory [store.Store]. It also implements [store.Sweeper],
// [store.KeyStore], [store.Pinger] and [store.ReplayCache]. The zero value is not usable; call
// [New].
type Store struct {
	shards [numShards]shard

	keyMu      sync.Mutex
	keyring    []byte
	keyVersion uint64

	replayMu sync.Mutex
	replay   replay

	events *eventbus.Log
}

type shard struct {
	mu       sync.RWMutex
	items    map[store.ID]*item
	subjects map[string]map[store.ID]*item // unrevoked, unswept sessions
	expiry   []*item                       // min-heap by deadline
	_        [64]byte                      // keep shards' locks on separate cache lines
}

// item is a shard's slot for one record. rec is replaced, never modified.
type item struct {
	rec      *store.Record
	deadline time.Time // rec.Deadline()
	heapIdx  int
}

// liveAt reports whether an indexed item is live at now. The index holds
// only unrevoked records, so only the cached deadline needs checking, which
// spares following it.rec for the entries that are filtered out.
func (it *item) liveAt(now time.Time) bool { return now.Before(it.deadline) }

// New returns an empty Store.
func New() *Store {
	s := &Store{events: eventbus.New(store.DefaultEventRetention)}
	for i := range s.shards {
		s.shards[i].items = make(map[store.ID]*item)
		s.shards[i].subjects = make(map[string]map[store.ID]*item)
	}
	return s
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Sweeper  = (*Store)(nil)
	_ store.KeyStore = (*Store)(nil)
	_ store.Pinger   = (*Store)(nil)
	_ store.EventLog = (*Store)(nil)
)

func (s *Store) shardOf(id store.ID) *shard { return &s.shards[id.Tag()%numShards] }

func (s *Store) shardOfSubject(subject string) *shard {
	return &s.shards[store.SubjectTag(subject)%numShards]
}

// unavailable reports a done context as an error matching both
// store.ErrUnavailable and the context's error.
func unavailable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Get returns the stored record, which the caller must not modify. It does
// not allocate.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(ctx)
	}
	sh := s.shardOf(id)
	var rec *store.Record
	sh.mu.RLock()
	if it := sh.items[id]; it != nil {
		rec = it.rec
	}
	sh.mu.RUnlock()
	if rec == nil {
		return nil, store.ErrNotFound
	}
	return rec, nil
}

// Create stores a copy of rec as version 1 and evicts beyond max; see
// [store.Store]. It refuses a record with a zero ID, a subject outside
// 1..[store.MaxSubjectLen] bytes, or an ID whose tag is not the subject's.
func (s *Store) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := unavailable(ctx); err != nil {
		return nil, err
	}
	if err := store.Validate(rec); err != nil {
		return nil, err
	}
	c := clone(rec)
	c.Version = 1
	sh := s.shardOf(c.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.items[c.ID] != nil {
		return nil, store.ErrExists
	}
	it := &item{rec: c, deadline: c.Deadline()}
	sh.items[c.ID] = it
	sh.push(it)
	if c.Revoked() {
		return nil, nil
	}
	sh.index(c.Subject, it)
	if max <= 0 {
		return nil, nil
	}
	evicted := sh.evict(c, max)
	for _, id := range evicted {
		s.events.Append(store.RevokeEvents(id, c.Subject, store.ReasonEvicted, c.CreatedAt)...)
	}
	return evicted, nil
}

// evict revokes the least recently seen live sessions of c's subject other
// than c until at most max are live at c.CreatedAt. sh.mu is held.
func (sh *shard) evict(c *store.Record, max int) []store.ID {
	idx := sh.subjects[c.Subject]
	if len(idx) <= max {
		return nil
	}
	live := 0
	if c.Live(c.CreatedAt) {
		live = 1
	}
	others := make([]*item, 0, len(idx))
	for _, it := range idx {
		if it.rec != c && it.liveAt(c.CreatedAt) {
			others = append(others, it)
		}
	}
	excess := live + len(others) - max
	if excess <= 0 {
		return nil
	}
	// Least recently seen first (ties: least recently created): the
	// reverse of List's order.
	slices.SortFunc(others, func(a, b *item) int { return -byRecency(a.rec, b.rec) })
	evicted := make([]store.ID, 0, min(excess, len(others)))
	for _, it := range others[:min(excess, len(others))] {
		sh.revoke(it, store.ReasonEvicted, c.CreatedAt)
		evicted = append(evicted, it.rec.ID)
	}
	return evicted
}

// Update replaces the stored record with a copy of rec if versions match;
// see [store.Store]. The stored Subject is kept whatever rec.Subject says.
// An Update that sets RevokedAt revokes: the record leaves its subject's
// index.
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := unavailable(ctx); err != nil {
		return err
	}
	if err := store.Validate(rec); err != nil {
		return err
	}
	c := clone(rec)
	sh := s.shardOf(c.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it := sh.items[c.ID]
	if it == nil {
		return store.ErrNotFound
	}
	old := it.rec
	if old.Revoked() || old.Version != rec.Version {
		return store.ErrConflict
	}
	c.Subject = old.Subject
	c.Version = old.Version + 1
	sh.replace(it, c)
	if c.Revoked() {
		sh.unindex(it)
	}
	if c.VerifierHash != old.VerifierHash {
		s.events.Append(store.Event{Type: store.EventSessionRenewed, SessionID: c.ID, Subject: c.Subject, At: c.LastSeenAt})
	}
	return nil
}

// RotateRefresh swaps the refresh state if it still is r.Expect; see
// [store.Store].
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	if err := unavailable(ctx); err != nil {
		return nil, err
	}
	sh := s.shardOf(r.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it := sh.items[r.ID]
	if it == nil {
		return nil, store.ErrNotFound
	}
	old := it.rec
	if old.Revoked() || old.Refresh.Current != r.Expect {
		return old, store.ErrConflict
	}
	c := *old // Data and Claims are shared: neither record is ever modified
	c.Version++
	c.Refresh = r.Next
	c.Refresh.RotatedAt = norm(c.Refresh.RotatedAt)
	c.LastSeenAt = norm(r.LastSeenAt)
	c.IdleExpiresAt = norm(r.IdleExpiresAt)
	sh.replace(it, &c)
	return &c, nil
}

// Revoke marks the record revoked; see [store.Store]. A zero at is taken
// as the current time, so a revocation is never lost to a zero RevokedAt.
func (s *Store) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := unavailable(ctx); err != nil {
		return err
	}
	if err := store.ValidReason(reason, at); err != nil {
		return err
	}
	if at.IsZero() {
		at = time.Now()
	}
	sh := s.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it := sh.items[id]
	if it == nil {
		return store.ErrNotFound
	}
	if !it.rec.Revoked() {
		sh.revoke(it, reason, at)
		s.events.Append(store.RevokeEvents(id, it.rec.Subject, reason, at)...)
	}
	return nil
}

// RevokeSubject revokes the subject's sessions but except, expired by at
// or not; see [store.Store].
func (s *Store) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := unavailable(ctx); err != nil {
		return nil, err
	}
	if err := store.ValidReason(reason, at); err != nil {
		return nil, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	sh := s.shardOfSubject(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var revoked []store.ID
	for id, it := range sh.subjects[subject] {
		if id == except {
			continue
		}
		sh.revoke(it, reason, at)
		revoked = append(revoked, id)
	}
	s.events.Append(store.Event{Type: store.EventSubjectRevoked, Subject: subject, Except: except, Reason: reason, At: at})
	return revoked, nil
}

// List returns the subject's sessions live at now, most recently seen
// first; see [store.Store]. The records are shared and read-only.
func (s *Store) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := unavailable(ctx); err != nil {
		return nil, err
	}
	sh := s.shardOfSubject(subject)
	sh.mu.RLock()
	idx := sh.subjects[subject]
	out := make([]*store.Record, 0, len(idx))
	for _, it := range idx {
		if it.liveAt(now) {
			out = append(out, it.rec)
		}
	}
	sh.mu.RUnlock()
	slices.SortFunc(out, byRecency)
	return out, nil
}

// byRecency orders records most recently seen first, then most recently
// created, then by ID so the order is total.
func byRecency(a, b *store.Record) int {
	if c := b.LastSeenAt.Compare(a.LastSeenAt); c != 0 {
		return c
	}
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// Sweep deletes records and tombstones whose deadline is at or before now,
// with their index entries, and returns how many it deleted. It visits only
// expired records. Call it periodically, e.g. every minute.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int, error) {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		for {
			if err := unavailable(ctx); err != nil {
				return n, err
			}
			sh.mu.RLock()
			due := len(sh.expiry) > 0 && !sh.expiry[0].deadline.After(now)
			sh.mu.RUnlock()
			if !due {
				break
			}
			sh.mu.Lock()
			k := 0
			for ; k < sweepBatch && len(sh.expiry) > 0 && !sh.expiry[0].deadline.After(now); k++ {
				it := sh.expiry[0]
				sh.remove(0)
				delete(sh.items, it.rec.ID)
				sh.unindex(it)
			}
			sh.mu.Unlock()
			n += k
		}
	}
	return n, nil
}

// Len returns the number of records held, tombstones included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.items)
		sh.mu.RUnlock()
	}
	return n
}

// KeyringVersion implements [store.KeyringVersioner].
func (s *Store) KeyringVersion(ctx context.Context) (uint64, error) {
	if err := unavailable(ctx); err != nil {
		return 0, err
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return s.keyVersion, nil
}

// LoadKeyring returns a copy of the saved keyring and its version.
func (s *Store) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	if err := unavailable(ctx); err != nil {
		return nil, 0, err
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	return bytes.Clone(s.keyring), s.keyVersion, nil
}

// SaveKeyring saves a copy of blob as version expect+1 if the saved version
// is expect.
func (s *Store) SaveKeyring(ctx context.Context, blob []byte, expect uint64) error {
	if err := unavailable(ctx); err != nil {
		return err
	}
	b := bytes.Clone(blob)
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.keyVersion != expect {
		return store.ErrConflict
	}
	s.keyring = b
	s.keyVersion++
	return nil
}

// Ping reports only a done context: memory is always reachable.
func (s *Store) Ping(ctx context.Context) error { return unavailable(ctx) }

// revoke publishes a revoked copy of it.rec and drops it from the subject
// index. sh.mu is held.
func (sh *shard) revoke(it *item, reason string, at time.Time) {
	c := *it.rec
	c.Version++
	c.RevokedAt = norm(at)
	c.RevokeReason = reason
	sh.replace(it, &c)
	sh.unindex(it)
}

// replace publishes c in it and moves it in the expiry heap. sh.mu is held.
func (sh *shard) replace(it *item, c *store.Record) {
	it.rec = c
	if d := c.Deadline(); !d.Equal(it.deadline) {
		it.deadline = d
		sh.fix(it.heapIdx)
	}
}

func (sh *shard) index(subject string, it *item) {
	idx := sh.subjects[subject]
	if idx == nil {
		idx = make(map[store.ID]*item)
		sh.subjects[subject] = idx
	}
	idx[it.rec.ID] = it
}

func (sh *shard) unindex(it *item) {
	idx := sh.subjects[it.rec.Subject]
	if idx == nil {
		return
	}
	delete(idx, it.rec.ID)
	if len(idx) == 0 {
		delete(sh.subjects, it.rec.Subject)
	}
}

// clone returns a deep copy of r with its times normalized.
func clone(r *store.Record) *store.Record {
	c := r.Clone()
	c.Refresh.RotatedAt = norm(c.Refresh.RotatedAt)
	for _, t := range [...]*time.Time{&c.CreatedAt, &c.AuthTime, &c.LastSeenAt, &c.IdleExpiresAt, &c.ExpiresAt, &c.RevokedAt} {
		*t = norm(*t)
	}
	return c
}

// norm returns t in UTC without a monotonic clock reading; the zero Time
// stays zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
