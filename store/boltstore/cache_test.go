package boltstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// A Get served from the record cache never hides a write that returned:
// every write of a record, by every operation, is seen by the next Get.
func TestCacheSeesEveryWrite(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, nil)
	get := func(id store.ID) *store.Record {
		t.Helper()
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return r
	}
	a := newRecord(t, "alice", t0)
	mustCreate(t, s, a, 0)
	r1 := get(a.ID)
	if get(a.ID) != r1 {
		t.Fatal("a second Get decoded the record again: the cache is not used")
	}

	w := r1.Clone()
	w.Data = []byte(`{"k":"updated"}`)
	if err := s.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	if r := get(a.ID); r.Version != r1.Version+1 || string(r.Data) != `{"k":"updated"}` {
		t.Fatalf("after Update: version %d, data %s", r.Version, r.Data)
	}

	r2 := get(a.ID)
	next := r2.Refresh
	next.Previous, next.Current = r2.Refresh.Current, store.Hash{1}
	if _, err := s.RotateRefresh(ctx, store.Rotation{ID: a.ID, Expect: r2.Refresh.Current, Next: next, LastSeenAt: t0, IdleExpiresAt: r2.IdleExpiresAt}); err != nil {
		t.Fatal(err)
	}
	if r := get(a.ID); r.Refresh.Current != (store.Hash{1}) {
		t.Fatal("after RotateRefresh: the old refresh state")
	}

	if err := s.Revoke(ctx, a.ID, store.ReasonAdmin, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if r := get(a.ID); !r.Revoked() {
		t.Fatal("after Revoke: not revoked")
	}

	b, c := newRecord(t, "bob", t0), newRecord(t, "bob", t0.Add(time.Millisecond))
	mustCreate(t, s, b, 0)
	mustCreate(t, s, c, 0)
	get(b.ID)
	get(c.ID)
	if _, err := s.RevokeSubject(ctx, "bob", c.ID, store.ReasonRevokeAll, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !get(b.ID).Revoked() || get(c.ID).Revoked() {
		t.Fatal("after RevokeSubject: the cached states")
	}

	// Create evicting the least recently seen of a subject's sessions.
	d := newRecord(t, "bob", t0.Add(2*time.Millisecond))
	if ev := mustCreate(t, s, d, 1); len(ev) != 1 || ev[0] != c.ID {
		t.Fatalf("Create evicted %v, want %v", ev, c.ID)
	}
	if !get(c.ID).Revoked() {
		t.Fatal("after an eviction by Create: the evicted session is live")
	}

	// Sweep deleting expired records.
	if n, err := s.Sweep(ctx, t0.Add(48*time.Hour)); err != nil || n == 0 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	for _, id := range []store.ID{a.ID, b.ID, c.ID, d.ID} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after Sweep: Get = %v, want ErrNotFound", err)
		}
	}
}

// Concurrent Gets never see a record older than a write that returned
// before they started, though each may have read the file before that
// write committed (the insert that would then cache the old copy is
// refused).
func TestCacheRacesWithWrites(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, &Options{NoSync: true})
	r := newRecord(t, "carol", t0)
	mustCreate(t, s, r, 0)
	var (
		committed atomic.Uint64 // the version of the last write that returned
		stop      atomic.Bool
		wg        sync.WaitGroup
		stale     atomic.Int64
	)
	committed.Store(1)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				want := committed.Load()
				got, err := s.Get(ctx, r.ID)
				if err != nil {
					t.Error(err)
					return
				}
				if got.Version < want {
					stale.Add(1)
				}
			}
		}()
	}
	cur := mustGet(t, s, r.ID)
	for range 500 {
		w := cur.Clone()
		w.LastSeenAt = w.LastSeenAt.Add(time.Millisecond)
		if err := s.Update(ctx, w); err != nil {
			t.Fatal(err)
		}
		committed.Store(w.Version + 1)
		cur = mustGet(t, s, r.ID)
		if cur.Version != w.Version+1 {
			t.Fatalf("Get after Update: version %d, want %d", cur.Version, w.Version+1)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := stale.Load(); n > 0 {
		t.Fatalf("%d Gets returned a version older than a write that had returned", n)
	}
}

// The cache holds no more than its budget, and a full cache still
// answers every record right.
func TestCacheBudget(t *testing.T) {
	s := newTestStore(t, &Options{CacheBytes: 20 * 1024, NoSync: true})
	var ids []store.ID
	for i := range 200 {
		r := newRecord(t, "dave", t0.Add(time.Duration(i)*time.Millisecond))
		mustCreate(t, s, r, -1)
		ids = append(ids, r.ID)
	}
	for range 3 {
		for _, id := range ids {
			if r := mustGet(t, s, id); r.ID != id {
				t.Fatalf("Get(%v) = record %v", id, r.ID)
			}
		}
	}
	s.cache.mu.RLock()
	size, n := s.cache.size, len(s.cache.m)
	s.cache.mu.RUnlock()
	if size > 20*1024 || n == 0 || n == len(ids) {
		t.Fatalf("cache holds %d records, %d bytes, for a 20 KiB budget and %d records", n, size, len(ids))
	}
	// Off: nothing cached.
	off := newTestStore(t, &Options{CacheBytes: -1})
	r := newRecord(t, "erin", t0)
	mustCreate(t, off, r, 0)
	if mustGet(t, off, r.ID) == mustGet(t, off, r.ID) {
		t.Fatal("CacheBytes < 0: a Get was served from a cache")
	}
}

// KeyringVersion, kept in memory, follows every SaveKeyring at once and
// survives a reopen (it is read from the file again).
func TestKeyringVersionInMemory(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/latch.db"
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.KeyringVersion(ctx); v != 0 || err != nil {
		t.Fatalf("KeyringVersion of a new file = %d, %v", v, err)
	}
	var wg sync.WaitGroup
	var saved atomic.Uint64
	var stale atomic.Int64
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := saved.Load()
				if v, err := s.KeyringVersion(ctx); err != nil || v < want {
					stale.Add(1)
				}
			}
		}()
	}
	for i := range uint64(200) {
		if err := s.SaveKeyring(ctx, []byte("blob"), i); err != nil {
			t.Fatal(err)
		}
		saved.Store(i + 1)
		if v, err := s.KeyringVersion(ctx); v != i+1 || err != nil {
			t.Fatalf("after SaveKeyring of version %d: KeyringVersion = %d, %v", i+1, v, err)
		}
	}
	close(stop)
	wg.Wait()
	if n := stale.Load(); n > 0 {
		t.Fatalf("%d KeyringVersion calls answered a version older than a save that had returned", n)
	}
	// A refused save changes nothing.
	if err := s.SaveKeyring(ctx, []byte("blob"), 7); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SaveKeyring with a stale version: %v", err)
	}
	if v, _ := s.KeyringVersion(ctx); v != 200 {
		t.Fatalf("after a refused save: %d", v)
	}
	s.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.KeyringVersion(ctx); v != 200 || err != nil {
		t.Fatalf("after reopening: %d, %v", v, err)
	}
	if _, err := s.KeyringVersion(canceled(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("with a done context: %v", err)
	}
}

func canceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// GetFresh reads the file past the cache: a record damaged behind the
// store's back after Get cached it is still served by Get (the cache is
// exact for every write through the store), and refused by GetFresh.
func TestGetFreshBypassesCache(t *testing.T) {
	ctx := t.Context()
	s := newTestStore(t, nil)
	r := newRecord(t, "frank", t0)
	mustCreate(t, s, r, 0)
	cached := mustGet(t, s, r.ID)
	boltValue{}.Flip(t, s, r.ID, 20, 0x01)
	if got := mustGet(t, s, r.ID); got != cached {
		t.Fatal("Get did not answer from the cache")
	}
	if _, err := s.GetFresh(ctx, r.ID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("GetFresh of a damaged record: %v, want ErrCorrupt", err)
	}
	boltValue{}.Flip(t, s, r.ID, 20, 0x01) // repaired, for the cleanup's check
	if got, err := s.GetFresh(ctx, r.ID); err != nil || got.Version != cached.Version {
		t.Fatalf("GetFresh after the repair: %v, %v", got, err)
	}
}
