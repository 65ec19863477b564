package memstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := New()
		t.Cleanup(func() { s.check(t) })
		return s
	})
}

// check verifies the store's internal invariants: every item sits on the
// shard of its ID's tag, at its recorded heap position, with a cached
// deadline that matches its record; the heap is ordered; the subject index
// holds exactly the unrevoked records, with no empty subject entries.
func (s *Store) check(t testing.TB) {
	t.Helper()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		unrevoked := 0
		for id, it := range sh.items {
			switch {
			case it.rec.ID != id:
				t.Errorf("shard %d: item under one ID holds another", i)
			case s.shardOf(id) != sh:
				t.Errorf("shard %d: item on the wrong shard", i)
			case !it.deadline.Equal(it.rec.Deadline()):
				t.Errorf("shard %d: cached deadline is stale", i)
			case it.heapIdx < 0 || it.heapIdx >= len(sh.expiry) || sh.expiry[it.heapIdx] != it:
				t.Errorf("shard %d: item not at its heap position", i)
			case s.shardOfSubject(it.rec.Subject) != sh:
				t.Errorf("shard %d: record's subject belongs to another shard", i)
			}
			if !it.rec.Revoked() {
				unrevoked++
				if sh.subjects[it.rec.Subject][id] != it {
					t.Errorf("shard %d: unrevoked record missing from its subject's index", i)
				}
			}
		}
		if len(sh.expiry) != len(sh.items) {
			t.Errorf("shard %d: %d heap entries for %d items", i, len(sh.expiry), len(sh.items))
		}
		for j := 1; j < len(sh.expiry); j++ {
			if sh.less(j, (j-1)/2) {
				t.Errorf("shard %d: heap out of order at %d", i, j)
			}
		}
		indexed := 0
		for subject, idx := range sh.subjects {
			if len(idx) == 0 {
				t.Errorf("shard %d: empty index kept for a subject", i)
			}
			for id, it := range idx {
				indexed++
				if sh.items[id] != it || it.rec.Revoked() || it.rec.Subject != subject {
					t.Errorf("shard %d: subject index holds a dead, revoked or foreign entry", i)
				}
			}
		}
		if indexed != unrevoked {
			t.Errorf("shard %d: %d index entries for %d unrevoked records", i, indexed, unrevoked)
		}
		sh.mu.RUnlock()
	}
}

func newRecord(t testing.TB, subject string, now time.Time) *store.Record {
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Record{ID: id, Subject: subject, CreatedAt: now, AuthTime: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(30 * time.Minute), ExpiresAt: now.Add(24 * time.Hour),
		Data: []byte(`{"a":1}`)}
	rand.Read(r.VerifierHash[:])
	return r
}

// Refused records are checked by storetest's Create/Invalid clause.

func TestRevokeZeroTimeStillRevokes(t *testing.T) {
	s := New()
	r := newRecord(t, "alice", time.Now())
	if _, err := s.Create(t.Context(), r, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(t.Context(), r.ID, store.ReasonLogout, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(t.Context(), r.ID)
	if !got.Revoked() {
		t.Error("Revoke with a zero time left the record unrevoked")
	}
}

// TestGetAllocs enforces the hot-path promise: Get allocates nothing,
// whether it finds the record or not.
func TestGetAllocs(t *testing.T) {
	s := New()
	ctx := context.Background()
	r := newRecord(t, "alice", time.Now())
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	missing := newRecord(t, "alice", time.Now()).ID
	var sink *store.Record
	if n := testing.AllocsPerRun(1000, func() { sink, _ = s.Get(ctx, r.ID) }); n != 0 {
		t.Errorf("Get of a stored record: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { sink, _ = s.Get(ctx, missing) }); n != 0 {
		t.Errorf("Get of a missing record: %v allocations, want 0", n)
	}
	_ = sink
}

// TestSweepRandomized drives the expiry heap through random creates,
// deadline moves, revocations and sweeps, checking the invariants and the
// sweep counts against a model.
func TestSweepRandomized(t *testing.T) {
	s := New()
	ctx := t.Context()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := mrand.New(mrand.NewPCG(7, 9))
	model := map[store.ID]time.Time{} // deadline of every stored record
	var ids []store.ID
	now := base
	for step := range 3000 {
		switch op := rng.IntN(10); {
		case op < 5:
			r := newRecord(t, fmt.Sprintf("user%d", rng.IntN(40)), now)
			r.IdleExpiresAt = now.Add(time.Duration(rng.IntN(600)) * time.Second)
			if _, err := s.Create(ctx, r, 1+rng.IntN(8)); err != nil {
				t.Fatal(err)
			}
			model[r.ID] = r.Deadline()
			ids = append(ids, r.ID)
		case op < 7 && len(ids) > 0:
			id := ids[rng.IntN(len(ids))]
			cur, err := s.Get(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			c := cur.Clone()
			c.IdleExpiresAt = now.Add(time.Duration(rng.IntN(600)) * time.Second)
			switch err := s.Update(ctx, c); {
			case err == nil:
				model[id] = c.Deadline()
			case !errors.Is(err, store.ErrConflict) || !cur.Revoked():
				t.Fatalf("step %d: Update: %v", step, err)
			}
		case op < 8 && len(ids) > 0:
			id := ids[rng.IntN(len(ids))]
			if err := s.Revoke(ctx, id, store.ReasonLogout, now); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		default:
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
			want := 0
			for id, d := range model {
				if !d.After(now) {
					want++
					delete(model, id)
				}
			}
			n, err := s.Sweep(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("step %d: Sweep deleted %d, want %d", step, n, want)
			}
			if s.Len() != len(model) {
				t.Fatalf("step %d: %d records stored, model has %d", step, s.Len(), len(model))
			}
		}
		if step%500 == 0 {
			s.check(t)
		}
	}
	s.check(t)
}

func benchStore(b *testing.B, n int) (*Store, []store.ID) {
	s := New()
	ids := make([]store.ID, n)
	now := time.Now()
	for i := range ids {
		r := newRecord(b, fmt.Sprintf("user%d", i%(n/4+1)), now)
		if _, err := s.Create(context.Background(), r, 0); err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	return s, ids
}

func BenchmarkGet(b *testing.B) {
	s, ids := benchStore(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s, ids := benchStore(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := mrand.IntN(len(ids))
		for pb.Next() {
			if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkTouch is the validation path's write: a CAS Update of LastSeenAt
// and the idle deadline.
func BenchmarkTouch(b *testing.B) {
	s, ids := benchStore(b, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		cur, _ := s.Get(ctx, ids[i%len(ids)])
		c := cur.Clone()
		c.LastSeenAt = c.LastSeenAt.Add(time.Minute)
		c.IdleExpiresAt = c.IdleExpiresAt.Add(time.Minute)
		if err := s.Update(ctx, c); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCreateWithEviction(b *testing.B) {
	s := New()
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := newRecord(b, fmt.Sprintf("user%d", i%1000), now.Add(time.Duration(i)))
		if _, err := s.Create(ctx, r, 10); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
