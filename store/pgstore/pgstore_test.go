package pgstore

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// want is r as the store must return it after a write at version v.
func want(r *store.Record, v uint64) *store.Record {
	c := r.Clone()
	c.Version = v
	return c
}

func mustGet(t *testing.T, s *Store, id store.ID) *store.Record {
	t.Helper()
	r, err := s.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

func TestRoundTripExact(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	// Bytes text would refuse: invalid UTF-8 and NUL.
	r := newRecord(t, "al\x00ice\xff", 0)
	r.UserAgent = "agent\xfe\x00"
	r.Refresh.Generation = 1<<32 - 1
	r.Refresh.RotatedAt = testEpoch.Add(-time.Nanosecond)
	r.Version = 42 // ignored by Create
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got := mustGet(t, s, r.ID)
	w := want(r, 1)
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("Get after Create:\n got %+v\nwant %+v", got, w)
	}
	// Same decoding as the binary codec, so stores agree on every field.
	blob, _ := w.MarshalBinary()
	var viaCodec store.Record
	if err := viaCodec.UnmarshalBinary(blob); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &viaCodec) {
		t.Fatalf("Get differs from codec round trip:\n got %+v\nwant %+v", got, &viaCodec)
	}
}

func TestEmptyValuesReadBackNil(t *testing.T) {
	s := openTestStore(t, Options{})
	r := newRecord(t, "bob", 0)
	r.Data, r.Claims, r.IP, r.UserAgent = []byte{}, nil, "", ""
	if _, err := s.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, r.ID)
	if got.Data != nil || got.Claims != nil {
		t.Fatalf("empty Data/Claims read back as %q/%q, want nil", got.Data, got.Claims)
	}
}

func TestGetMissing(t *testing.T) {
	s := openTestStore(t, Options{})
	_, err := s.Get(ctxT(t), newRecord(t, "x", 0).ID)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
}

func TestCreateExists(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.Create(ctx, r, 0)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ErrExists must not also match ErrUnavailable: %v", err)
	}
}

func TestUpdateCAS(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	cur := mustGet(t, s, r.ID).Clone()
	cur.Data = []byte(`{"n":1}`)
	cur.LastSeenAt = cur.LastSeenAt.Add(time.Minute)
	cur.IdleExpiresAt = cur.IdleExpiresAt.Add(time.Minute)
	if err := s.Update(ctx, cur); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got := mustGet(t, s, r.ID); !reflect.DeepEqual(got, want(cur, 2)) {
		t.Fatalf("after Update:\n got %+v\nwant %+v", got, want(cur, 2))
	}
	// Stale version.
	if err := s.Update(ctx, cur); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Update: %v, want ErrConflict", err)
	}
	// Subject never changes: another subject's record is refused.
	c2 := mustGet(t, s, r.ID).Clone()
	c2.Subject = "mallory"
	if err := s.Update(ctx, c2); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Update changing the subject: %v, want ErrInvalid", err)
	}
	if got := mustGet(t, s, r.ID); got.Subject != "alice" {
		t.Fatalf("Update changed Subject to %q", got.Subject)
	}
	// Missing.
	if err := s.Update(ctx, newRecord(t, "alice", 0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update missing: %v, want ErrNotFound", err)
	}
	// Revoked.
	if err := s.Revoke(ctx, r.ID, store.ReasonLogout, testEpoch); err != nil {
		t.Fatal(err)
	}
	rv := mustGet(t, s, r.ID).Clone()
	if err := s.Update(ctx, rv); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Update revoked: %v, want ErrConflict", err)
	}
}

func TestUpdateContention(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					cur, err := s.Get(ctx, r.ID)
					if err != nil {
						t.Error(err)
						return
					}
					c := cur.Clone()
					c.LastSeenAt = c.LastSeenAt.Add(time.Second)
					err = s.Update(ctx, c)
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					wins++
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	got := mustGet(t, s, r.ID)
	if got.Version != uint64(1+wins) || wins != workers*each {
		t.Fatalf("version %d after %d successful updates (want %d): lost update", got.Version, wins, 1+workers*each)
	}
	if want := r.LastSeenAt.Add(time.Duration(wins) * time.Second); !got.LastSeenAt.Equal(want) {
		t.Fatalf("LastSeenAt %v, want %v: lost update", got.LastSeenAt, want)
	}
}

func TestRotateRefresh(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	next := store.Refresh{Key: r.Refresh.Key, Previous: r.Refresh.Current, RotatedAt: testEpoch.Add(time.Minute), Generation: 1}
	next.Current[0] = 0xAB
	rot := store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next,
		LastSeenAt: testEpoch.Add(time.Minute), IdleExpiresAt: testEpoch.Add(31 * time.Minute)}
	got, err := s.RotateRefresh(ctx, rot)
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	w := want(r, 2)
	w.Refresh, w.LastSeenAt, w.IdleExpiresAt = next, rot.LastSeenAt, rot.IdleExpiresAt
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("RotateRefresh returned\n %+v\nwant %+v", got, w)
	}
	if g := mustGet(t, s, r.ID); !reflect.DeepEqual(g, w) {
		t.Fatalf("Get after rotate\n %+v\nwant %+v", g, w)
	}
	// Replaying the same rotation: conflict with the stored record.
	got, err = s.RotateRefresh(ctx, rot)
	if !errors.Is(err, store.ErrConflict) || got == nil || got.Refresh.Current != next.Current {
		t.Fatalf("replayed rotation: %v, %+v; want ErrConflict and the stored record", err, got)
	}
	// Missing.
	if _, err := s.RotateRefresh(ctx, store.Rotation{ID: newRecord(t, "a", 0).ID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate missing: %v, want ErrNotFound", err)
	}
	// Revoked: conflict even with the right hash.
	if err := s.Revoke(ctx, r.ID, store.ReasonAdmin, testEpoch); err != nil {
		t.Fatal(err)
	}
	rot.Expect = next.Current
	got, err = s.RotateRefresh(ctx, rot)
	if !errors.Is(err, store.ErrConflict) || got == nil || !got.Revoked() {
		t.Fatalf("rotate revoked: %v, %+v; want ErrConflict and the revoked record", err, got)
	}
}

func TestRotateRefreshRace(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := store.Refresh{Previous: r.Refresh.Current, Generation: 1}
			next.Current[0] = byte(i + 1)
			_, errs[i] = s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next,
				LastSeenAt: testEpoch, IdleExpiresAt: r.IdleExpiresAt})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("racing rotation: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d racing rotations succeeded, want exactly 1", ok)
	}
}

func TestRevoke(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	at := testEpoch.Add(time.Second)
	if err := s.Revoke(ctx, r.ID, store.ReasonLogout, at); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, r.ID)
	if !got.RevokedAt.Equal(at) || got.RevokeReason != store.ReasonLogout || got.Version != 2 {
		t.Fatalf("after Revoke: %+v", got)
	}
	// Again: succeeds, changes nothing.
	if err := s.Revoke(ctx, r.ID, store.ReasonAdmin, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g := mustGet(t, s, r.ID); !reflect.DeepEqual(g, got) {
		t.Fatalf("second Revoke changed the record: %+v", g)
	}
	if err := s.Revoke(ctx, newRecord(t, "a", 0).ID, store.ReasonLogout, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Revoke missing: %v, want ErrNotFound", err)
	}
	if l, err := s.List(ctx, "alice", testEpoch); err != nil || len(l) != 0 {
		t.Fatalf("List after Revoke: %d, %v", len(l), err)
	}
	// A zero time must still revoke.
	r2 := newRecord(t, "alice", 0)
	if _, err := s.Create(ctx, r2, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, r2.ID, store.ReasonLogout, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !mustGet(t, s, r2.ID).Revoked() {
		t.Fatal("Revoke with a zero time left the session live")
	}
}

func ids(recs []*store.Record) []store.ID {
	out := make([]store.ID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func sortIDs(s []store.ID) []store.ID {
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i][:], s[j][:]) < 0 })
	return s
}

func TestListOrderAndLiveness(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	a := newRecord(t, "alice", 0)
	b := newRecord(t, "alice", time.Second) // created later
	c := newRecord(t, "alice", 0)
	c.LastSeenAt = testEpoch.Add(time.Minute) // seen most recently
	b.LastSeenAt = a.LastSeenAt               // tie with a: b created later comes first
	expired := newRecord(t, "alice", 0)
	expired.IdleExpiresAt = testEpoch.Add(time.Second)
	revoked := newRecord(t, "alice", 0)
	other := newRecord(t, "bob", 0)
	for _, r := range []*store.Record{a, b, c, expired, revoked, other} {
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Revoke(ctx, revoked.ID, store.ReasonLogout, testEpoch); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx, "alice", testEpoch.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(l), []store.ID{c.ID, b.ID, a.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List order %v, want %v (c, b, a)", got, want)
	}
	if l, _ := s.List(ctx, "nobody", testEpoch); len(l) != 0 {
		t.Fatalf("List of unknown subject: %d", len(l))
	}
}

func TestCreateEvicts(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	var recs []*store.Record
	for i := 0; i < 3; i++ {
		r := newRecord(t, "alice", time.Duration(i)*time.Second)
		if ev, err := s.Create(ctx, r, 3); err != nil || len(ev) != 0 {
			t.Fatalf("Create %d: %v, evicted %v", i, err, ev)
		}
		recs = append(recs, r)
	}
	r := newRecord(t, "alice", 10*time.Second)
	ev, err := s.Create(ctx, r, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 1 || ev[0] != recs[0].ID {
		t.Fatalf("evicted %v, want the least recently seen %v", ev, recs[0].ID)
	}
	g := mustGet(t, s, recs[0].ID)
	if !g.Revoked() || g.RevokeReason != store.ReasonEvicted || !g.RevokedAt.Equal(r.CreatedAt) {
		t.Fatalf("evicted record: %+v", g)
	}
	if l, _ := s.List(ctx, "alice", r.CreatedAt); len(l) != 3 {
		t.Fatalf("%d live after eviction, want 3", len(l))
	}
}

func TestConcurrentCreateEviction(t *testing.T) {
	s := openTestStore(t, Options{MaxConns: 8})
	ctx := ctxT(t)
	const n, max = 24, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	var evicted []store.ID
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev, err := s.Create(ctx, newRecord(t, "alice", time.Duration(i)*time.Millisecond), max)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			evicted = append(evicted, ev...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	l, err := s.List(ctx, "alice", testEpoch.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != max || len(evicted) != n-max {
		t.Fatalf("%d live and %d evicted after %d concurrent creates, want %d and %d", len(l), len(evicted), n, max, n-max)
	}
}

func TestRevokeSubject(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	var all []store.ID
	for i := 0; i < 5; i++ {
		r := newRecord(t, "alice", 0)
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		all = append(all, r.ID)
	}
	bob := newRecord(t, "bob", 0)
	if _, err := s.Create(ctx, bob, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.RevokeSubject(ctx, "alice", all[0], store.ReasonRevokeAll, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sortIDs(got), sortIDs(append([]store.ID(nil), all[1:]...))) {
		t.Fatalf("RevokeSubject returned %v, want %v", got, all[1:])
	}
	if l, _ := s.List(ctx, "alice", testEpoch); len(l) != 1 || l[0].ID != all[0] {
		t.Fatalf("after RevokeSubject: %v live, want only the excepted one", ids(l))
	}
	if mustGet(t, s, bob.ID).Revoked() {
		t.Fatal("RevokeSubject revoked another subject's session")
	}
	got, err = s.RevokeSubject(ctx, "alice", store.ID{}, store.ReasonRevokeAll, testEpoch)
	if err != nil || len(got) != 1 {
		t.Fatalf("RevokeSubject with zero except: %v, %v", got, err)
	}
}

// TestRevokeSubjectRacingCreate: every session whose Create returned before
// RevokeSubject started is revoked; every other one is either revoked and
// reported, or live — never revoked and unreported.
func TestRevokeSubjectRacingCreate(t *testing.T) {
	s := openTestStore(t, Options{MaxConns: 8})
	ctx := ctxT(t)
	const n = 20
	created := make(chan store.ID, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRecord(t, "alice", 0)
			if _, err := s.Create(ctx, r, 0); err != nil {
				t.Error(err)
				return
			}
			created <- r.ID
		}()
	}
	revoked, err := s.RevokeSubject(ctx, "alice", store.ID{}, store.ReasonRevokeAll, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(created)
	reported := map[store.ID]bool{}
	for _, id := range revoked {
		reported[id] = true
	}
	for id := range created {
		if g := mustGet(t, s, id); g.Revoked() != reported[id] {
			t.Fatalf("session revoked=%v but reported=%v", g.Revoked(), reported[id])
		}
	}
}

func TestSweepBatches(t *testing.T) {
	s := openTestStore(t, Options{SweepBatch: 7})
	ctx := ctxT(t)
	const expired, live = 50, 5
	for i := 0; i < expired; i++ {
		r := newRecord(t, "alice", 0)
		r.IdleExpiresAt = testEpoch.Add(time.Duration(i) * time.Second)
		if i%5 == 0 { // tombstones go too
			r.RevokedAt, r.RevokeReason = testEpoch, store.ReasonLogout
		}
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	var keep []store.ID
	for i := 0; i < live; i++ {
		r := newRecord(t, "alice", 0)
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, r.ID)
	}
	now := testEpoch.Add(10 * time.Minute) // live ones idle out at +30 min
	n, err := s.Sweep(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != expired {
		t.Fatalf("Sweep deleted %d, want %d (batch size 7: must loop)", n, expired)
	}
	var rows int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.q.sessions).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != live {
		t.Fatalf("%d rows left, want %d", rows, live)
	}
	for _, id := range keep {
		mustGet(t, s, id)
	}
	if n, err := s.Sweep(ctx, now); n != 0 || err != nil {
		t.Fatalf("second Sweep: %d, %v", n, err)
	}
	// Deadline exactly now is swept ("at or before").
	r := newRecord(t, "alice", 0)
	r.ExpiresAt = now.Add(time.Hour)
	r.IdleExpiresAt = now.Add(time.Minute)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, now.Add(time.Minute)); n != 1 || err != nil {
		t.Fatalf("Sweep at the deadline: %d, %v; want 1", n, err)
	}
}

func TestKeyring(t *testing.T) {
	s := openTestStore(t, Options{})
	ctx := ctxT(t)
	blob, v, err := s.LoadKeyring(ctx)
	if blob != nil || v != 0 || err != nil {
		t.Fatalf("empty keyring: %q, %d, %v", blob, v, err)
	}
	if err := s.SaveKeyring(ctx, []byte("one"), 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("save with expect 1 on empty: %v, want ErrConflict", err)
	}
	if err := s.SaveKeyring(ctx, []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveKeyring(ctx, []byte("dup"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second first save: %v, want ErrConflict", err)
	}
	if err := s.SaveKeyring(ctx, []byte("two"), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveKeyring(ctx, []byte("stale"), 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale save: %v, want ErrConflict", err)
	}
	blob, v, err = s.LoadKeyring(ctx)
	if string(blob) != "two" || v != 2 || err != nil {
		t.Fatalf("keyring: %q, %d, %v; want two, 2", blob, v, err)
	}
}

func TestPing(t *testing.T) {
	s := openTestStore(t, Options{})
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := store.Ping(ctxT(t), s); err != nil {
		t.Fatal(err)
	}
}

// TestGetAllocs enforces the allocation budget of Get: pgx's own (its
// rows, field descriptions, command tag, the ID argument), the deadline's
// registration with pgx's context watcher, and the record with its
// strings and byte slices.
func TestGetAllocs(t *testing.T) {
	s := openTestStore(t, Options{})
	r := newRecord(t, "allocs", 0)
	if _, err := s.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	// The minimum of a few runs: AllocsPerRun counts the whole process.
	bg := context.Background()
	best := 1e9
	for range 3 {
		best = min(best, testing.AllocsPerRun(200, func() { s.Get(bg, r.ID) }))
	}
	if best > 16 {
		t.Errorf("Get: %v allocations, want at most 16", best)
	}
}
