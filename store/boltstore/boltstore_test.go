package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

func mustCreate(t *testing.T, s *Store, r *store.Record, max int) []store.ID {
	t.Helper()
	ev, err := s.Create(t.Context(), r, max)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return ev
}

func mustGet(t *testing.T, s *Store, id store.ID) *store.Record {
	t.Helper()
	r, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

func TestOpenPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "latch.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for _, c := range []struct {
		path string
		max  os.FileMode
	}{{dir, 0o700}, {filepath.Dir(dir), 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^c.max != 0 {
			t.Errorf("%s has mode %v, want at most %v", c.path, perm, c.max)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("", nil); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	// Not a bbolt file.
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a junk file: %v, want an error naming the path", err)
	}
	// Another program's bbolt file is left alone.
	path = filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("theirs")); return err })
	db.Close()
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "not a latch data file") {
		t.Errorf("Open of another program's bbolt file: %v", err)
	}
	// A schema from the future.
	path = filepath.Join(t.TempDir(), "future.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte{0, 0, 0, 0, 0, 0, 0, 9})
	})
	s.Close()
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "schema version 9") {
		t.Errorf("Open of a newer schema: %v, want a schema version error", err)
	}
}

// TestLockedInProcess: flock(2) locks belong to an open file description,
// so a second Open in the same process is refused like another process.
func TestLockedInProcess(t *testing.T) {
	s := newTestStore(t, nil)
	_, err := Open(s.Path(), &Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	var le *LockedError
	if !errors.As(err, &le) || le.Path != s.Path() || !strings.Contains(err.Error(), s.Path()) ||
		!strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Open: %v, want a *LockedError naming the path", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latch.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecord(t, "alice", t0)
	mustCreate(t, s, r, 0)
	if err := s.SaveKeyring(t.Context(), []byte("ring"), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustGet(t, s, r.ID); got.Version != 1 || got.Subject != "alice" {
		t.Errorf("after reopen: version %d subject %q", got.Version, got.Subject)
	}
	if blob, v, err := s.LoadKeyring(t.Context()); err != nil || v != 1 || string(blob) != "ring" {
		t.Errorf("keyring after reopen: %q %d %v", blob, v, err)
	}
	if err := checkDB(s.db); err != nil {
		t.Error(err)
	}
}

func TestCRUD(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	r := newRecord(t, "alice", t0)
	r.Version = 7
	if _, err := s.Get(ctx, r.ID); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get before Create: %v", err)
	}
	mustCreate(t, s, r, 0)
	if r.Version != 7 {
		t.Error("Create modified its argument")
	}
	got := mustGet(t, s, r.ID)
	if got.Version != 1 || got.Subject != r.Subject || got.VerifierHash != r.VerifierHash || !got.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("Get after Create returned a different record")
	}
	if _, err := s.Create(ctx, r, 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate Create: %v", err)
	}

	// Update: CAS on the version, deadline moves in the expiry index.
	u := got.Clone()
	u.LastSeenAt = t0.Add(10 * time.Minute)
	u.IdleExpiresAt = t0.Add(40 * time.Minute)
	u.Subject = "mallory" // another subject's tag: refused
	if err := s.Update(ctx, u); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Update changing the subject: %v, want ErrInvalid", err)
	}
	u.Subject = "alice"
	if err := s.Update(ctx, u); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Update(ctx, u); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Update: %v", err)
	}
	got = mustGet(t, s, r.ID)
	if got.Version != 2 || got.Subject != "alice" || !got.IdleExpiresAt.Equal(u.IdleExpiresAt) {
		t.Fatalf("after Update: version %d subject %q", got.Version, got.Subject)
	}
	missing := newRecord(t, "alice", t0)
	if err := s.Update(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update of a missing record: %v", err)
	}
	if err := checkDB(s.db); err != nil {
		t.Fatal(err)
	}

	// RotateRefresh.
	next := store.Refresh{Key: got.Refresh.Key, Current: store.Hash{1}, Previous: got.Refresh.Current, RotatedAt: t0.Add(11 * time.Minute), Generation: 1}
	rot := store.Rotation{ID: r.ID, Expect: got.Refresh.Current, Next: next, LastSeenAt: t0.Add(11 * time.Minute), IdleExpiresAt: t0.Add(41 * time.Minute)}
	nr, err := s.RotateRefresh(ctx, rot)
	if err != nil || nr.Version != 3 || nr.Refresh.Current != (store.Hash{1}) || !nr.IdleExpiresAt.Equal(rot.IdleExpiresAt) {
		t.Fatalf("RotateRefresh: %v", err)
	}
	cur, err := s.RotateRefresh(ctx, rot)
	if !errors.Is(err, store.ErrConflict) || cur == nil || cur.Version != 3 || cur.Refresh.Current != (store.Hash{1}) {
		t.Fatalf("repeated RotateRefresh: %v, want ErrConflict with the stored record", err)
	}
	if _, err := s.RotateRefresh(ctx, store.Rotation{ID: missing.ID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RotateRefresh of a missing record: %v", err)
	}

	// Revoke: tombstone, idempotent, then Update and RotateRefresh conflict.
	if err := s.Revoke(ctx, r.ID, store.ReasonLogout, t0.Add(12*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, r.ID, store.ReasonAdmin, t0.Add(13*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got = mustGet(t, s, r.ID)
	if got.Version != 4 || got.RevokeReason != store.ReasonLogout || !got.RevokedAt.Equal(t0.Add(12*time.Minute)) {
		t.Fatalf("after Revoke: version %d reason %q", got.Version, got.RevokeReason)
	}
	if err := s.Update(ctx, got); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update of a revoked record: %v", err)
	}
	rot.Expect = store.Hash{1}
	if cur, err := s.RotateRefresh(ctx, rot); !errors.Is(err, store.ErrConflict) || cur == nil || !cur.Revoked() {
		t.Errorf("RotateRefresh of a revoked record: %v", err)
	}
	if err := s.Revoke(ctx, missing.ID, store.ReasonLogout, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revoke of a missing record: %v", err)
	}
	if l, err := s.List(ctx, "alice", t0); err != nil || len(l) != 0 {
		t.Errorf("List after Revoke: %d records, %v", len(l), err)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	secret := strings.Repeat("x", store.MaxSubjectLen+1)
	for name, err := range map[string]error{
		"zero ID":       func() error { _, err := s.Create(ctx, &store.Record{Subject: "a"}, 0); return err }(),
		"nil record":    func() error { _, err := s.Create(ctx, nil, 0); return err }(),
		"empty subject": func() error { r := newRecord(t, "a", t0); r.Subject = ""; _, err := s.Create(ctx, r, 0); return err }(),
		"long subject": func() error {
			r := newRecord(t, "a", t0)
			r.Subject = secret
			_, err := s.Create(ctx, r, 0)
			return err
		}(),
		"list long":   func() error { _, err := s.List(ctx, secret, t0); return err }(),
		"revoke long": func() error { _, err := s.RevokeSubject(ctx, secret, store.ID{}, "x", t0); return err }(),
		"update nil":  s.Update(ctx, nil),
		"wrong tag": func() error {
			r := newRecord(t, "a", t0)
			r.Subject = "b"
			_, err := s.Create(ctx, r, 0)
			return err
		}(),
		"time out of range": func() error {
			r := newRecord(t, "a", t0)
			r.ExpiresAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
			_, err := s.Create(ctx, r, 0)
			return err
		}(),
		"revoke at year 1000": s.Revoke(ctx, store.ID{1}, "x", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)),
		"rotate to year 3000": func() error {
			_, err := s.RotateRefresh(ctx, store.Rotation{ID: store.ID{1}, IdleExpiresAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
			return err
		}(),
	} {
		if !errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// Refused writes left nothing behind.
	if l, err := s.List(ctx, "a", t0); err != nil || len(l) != 0 {
		t.Errorf("List after refused creates: %d records, %v", len(l), err)
	}
	// A zero revocation time means now: the session is revoked, not kept.
	z := newRecord(t, "z", t0)
	mustCreate(t, s, z, 0)
	if err := s.Revoke(ctx, z.ID, store.ReasonAdmin, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if g := mustGet(t, s, z.ID); !g.Revoked() {
		t.Error("Revoke at the zero time did not revoke")
	}
	r := newRecord(t, strings.Repeat("s", store.MaxSubjectLen), t0)
	r.Data = []byte(strings.Repeat("d", store.MaxValueLen))
	r.Claims = []byte(strings.Repeat("c", store.MaxValueLen))
	mustCreate(t, s, r, 0)
	if got := mustGet(t, s, r.ID); len(got.Data) != store.MaxValueLen {
		t.Errorf("Data of %d bytes came back as %d", store.MaxValueLen, len(got.Data))
	}
}

// TestSubjectsAreDisjoint: subjects that are prefixes of each other, or
// contain NUL bytes, never see each other's sessions.
func TestSubjectsAreDisjoint(t *testing.T) {
	s := newTestStore(t, nil)
	subjects := []string{"a", "a\x00", "a\x00b", "ab", "b", "\x00", "\x00\x00"}
	ids := map[string]store.ID{}
	for _, sub := range subjects {
		r := newRecord(t, sub, t0)
		mustCreate(t, s, r, 1)
		ids[sub] = r.ID
	}
	for _, sub := range subjects {
		l, err := s.List(t.Context(), sub, t0)
		if err != nil || len(l) != 1 || l[0].ID != ids[sub] {
			t.Errorf("List(%q): %d records, %v", sub, len(l), err)
		}
	}
	rev, err := s.RevokeSubject(t.Context(), "a", store.ID{}, store.ReasonRevokeAll, t0)
	if err != nil || len(rev) != 1 || rev[0] != ids["a"] {
		t.Errorf("RevokeSubject(a) = %v, %v", rev, err)
	}
}

func TestEviction(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	var rs []*store.Record
	for i := range 4 {
		r := newRecord(t, "bob", t0.Add(time.Duration(i)*time.Minute))
		// LastSeenAt order: r1 < r3 < r0 < r2.
		r.LastSeenAt = t0.Add([]time.Duration{2, 0, 3, 1}[i] * time.Minute)
		if ev := mustCreate(t, s, r, 0); len(ev) != 0 {
			t.Fatalf("Create without limit evicted %v", ev)
		}
		rs = append(rs, r)
	}
	// An expired one does not count and is not evicted.
	old := newRecord(t, "bob", t0.Add(-time.Hour))
	old.IdleExpiresAt = t0.Add(-time.Minute)
	mustCreate(t, s, old, 0)

	n := newRecord(t, "bob", t0.Add(5*time.Minute))
	ev := mustCreate(t, s, n, 3)
	if !slices.Equal(ev, []store.ID{rs[1].ID, rs[3].ID}) {
		t.Fatalf("evicted %v, want the two least recently seen", ev)
	}
	for _, id := range ev {
		g := mustGet(t, s, id)
		if g.RevokeReason != store.ReasonEvicted || !g.RevokedAt.Equal(n.CreatedAt) || g.Version != 2 {
			t.Errorf("evicted record: reason %q version %d", g.RevokeReason, g.Version)
		}
	}
	if g := mustGet(t, s, old.ID); g.Revoked() {
		t.Error("an expired session was evicted")
	}
	l, err := s.List(ctx, "bob", n.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	var got []store.ID
	for _, r := range l {
		got = append(got, r.ID)
	}
	// Most recently seen first: n (t0+5m), r2 (3m), r0 (2m).
	if want := []store.ID{n.ID, rs[2].ID, rs[0].ID}; !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	// max = 1 keeps only the new session.
	n2 := newRecord(t, "bob", t0.Add(6*time.Minute))
	if ev := mustCreate(t, s, n2, 1); len(ev) != 3 {
		t.Errorf("max=1 evicted %d sessions, want 3", len(ev))
	}
}

func TestListOrderAndForget(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	a := newRecord(t, "carol", t0)
	b := newRecord(t, "carol", t0.Add(time.Second)) // same LastSeenAt as c, created earlier
	c := newRecord(t, "carol", t0.Add(2*time.Second))
	b.LastSeenAt, c.LastSeenAt = t0.Add(time.Minute), t0.Add(time.Minute)
	short := newRecord(t, "carol", t0)
	short.IdleExpiresAt = t0.Add(time.Minute)
	for _, r := range []*store.Record{a, b, c, short} {
		mustCreate(t, s, r, 0)
	}
	l, err := s.List(ctx, "carol", t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []store.ID
	for _, r := range l {
		got = append(got, r.ID)
	}
	if want := []store.ID{c.ID, b.ID, a.ID}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	entries := func() (n int) {
		s.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketSubjects).Stats().KeyN
			return nil
		})
		return n
	}
	// List judges liveness at the caller's now but forgets nothing for it:
	// an earlier now still sees the expired session.
	if l, _ := s.List(ctx, "carol", t0); len(l) != 4 || entries() != 4 {
		t.Errorf("List at an earlier now: %d records, %d entries; want 4, 4", len(l), entries())
	}
	// Sweep removes the expired record with its entry.
	if n, err := s.Sweep(ctx, t0.Add(2*time.Minute)); n != 1 || err != nil || entries() != 3 {
		t.Errorf("Sweep = %d, %v; %d entries left, want 3", n, err, entries())
	}
	// An entry whose record vanished is forgotten by List.
	s.db.Update(func(tx *bolt.Tx) error {
		b, _ := s.bucketsOf(tx)
		b.exp.Delete(deadlineKey(a))
		return b.rec.Delete(a.ID[:])
	})
	if l, err := s.List(ctx, "carol", t0); err != nil || len(l) != 2 || entries() != 2 {
		t.Errorf("List with a dangling entry: %d records, %v, %d entries; want 2, 2", len(l), err, entries())
	}
}

func TestRevokeSubject(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	var ids []store.ID
	for i := range 5 {
		r := newRecord(t, "dave", t0.Add(time.Duration(i)*time.Second))
		mustCreate(t, s, r, 0)
		ids = append(ids, r.ID)
	}
	other := newRecord(t, "erin", t0)
	mustCreate(t, s, other, 0)
	rev, err := s.RevokeSubject(ctx, "dave", ids[2], store.ReasonRevokeAll, t0.Add(time.Minute))
	if err != nil || len(rev) != 4 || slices.Contains(rev, ids[2]) {
		t.Fatalf("RevokeSubject = %v, %v", rev, err)
	}
	for _, id := range rev {
		if g := mustGet(t, s, id); g.RevokeReason != store.ReasonRevokeAll || g.Version != 2 {
			t.Errorf("revoked record: reason %q version %d", g.RevokeReason, g.Version)
		}
	}
	if l, _ := s.List(ctx, "dave", t0.Add(time.Minute)); len(l) != 1 || l[0].ID != ids[2] {
		t.Errorf("List after RevokeSubject: %d records", len(l))
	}
	if l, _ := s.List(ctx, "erin", t0.Add(time.Minute)); len(l) != 1 {
		t.Errorf("another subject lost its session")
	}
	if rev, err := s.RevokeSubject(ctx, "nobody", store.ID{}, store.ReasonRevokeAll, t0); err != nil || len(rev) != 0 {
		t.Errorf("RevokeSubject of an unknown subject = %v, %v", rev, err)
	}
}

func TestSweep(t *testing.T) {
	s := newTestStore(t, &Options{SweepBatch: 7})
	ctx := t.Context()
	var expired, kept []store.ID
	for i := range 50 {
		r := newRecord(t, fmt.Sprintf("user%d", i%5), t0)
		switch i % 3 {
		case 0: // idle deadline passed
			r.IdleExpiresAt = t0.Add(time.Duration(i) * time.Second)
			expired = append(expired, r.ID)
		case 1: // absolute deadline passed
			r.ExpiresAt = t0.Add(time.Duration(i) * time.Second)
			expired = append(expired, r.ID)
		default:
			kept = append(kept, r.ID)
		}
		mustCreate(t, s, r, 0)
	}
	// A tombstone past its deadline goes too; one before it stays.
	if err := s.Revoke(ctx, expired[0], store.ReasonLogout, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, kept[0], store.ReasonLogout, t0); err != nil {
		t.Fatal(err)
	}
	// A touch moves a deadline out of the sweep's reach.
	g := mustGet(t, s, expired[2]).Clone() // i == 3: idle deadline passed
	g.IdleExpiresAt = t0.Add(time.Hour)
	if err := s.Update(ctx, g); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, expired[2])
	expired = slices.Delete(expired, 2, 3)

	now := t0.Add(time.Minute)
	n, err := s.Sweep(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDB(s.db); err != nil {
		t.Fatal(err)
	}
	var left int
	s.db.View(func(tx *bolt.Tx) error {
		left = tx.Bucket(bucketRecords).Stats().KeyN
		return nil
	})
	if n != 50-left || left != len(kept) {
		t.Errorf("Sweep deleted %d, %d records left, want %d left", n, left, len(kept))
	}
	for _, id := range kept {
		mustGet(t, s, id)
	}
	for _, id := range expired {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("swept record: %v", err)
		}
	}
	if n, err := s.Sweep(ctx, now); n != 0 || err != nil {
		t.Errorf("second Sweep = %d, %v", n, err)
	}
	// Sweep at a deadline exactly: "at or before now".
	for _, id := range kept { // out of the way
		if err := s.Revoke(ctx, id, store.ReasonAdmin, t0); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Sweep(ctx, t0.Add(2*time.Hour)); n != len(kept) {
		t.Errorf("Sweep after every deadline deleted %d, want %d", n, len(kept))
	}
	r := newRecord(t, "x", t0.Add(3*time.Hour))
	mustCreate(t, s, r, 0)
	if n, _ := s.Sweep(ctx, r.Deadline().Add(-1)); n != 0 {
		t.Errorf("Sweep before the deadline deleted %d", n)
	}
	if n, _ := s.Sweep(ctx, r.Deadline()); n != 1 {
		t.Errorf("Sweep at the deadline deleted %d, want 1", n)
	}
}

func TestSweepCancelled(t *testing.T) {
	s := newTestStore(t, &Options{SweepBatch: 2})
	for range 10 {
		r := newRecord(t, "u", t0)
		mustCreate(t, s, r, 0)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if n, err := s.Sweep(ctx, t0.Add(48*time.Hour)); n != 0 || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Sweep = %d, %v", n, err)
	}
}

func TestKeyring(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	if blob, v, err := s.LoadKeyring(ctx); blob != nil || v != 0 || err != nil {
		t.Fatalf("LoadKeyring on an empty store = %q, %d, %v", blob, v, err)
	}
	if err := s.SaveKeyring(ctx, []byte("one"), 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SaveKeyring with a wrong version: %v", err)
	}
	if err := s.SaveKeyring(ctx, []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveKeyring(ctx, []byte("two"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second SaveKeyring from version 0: %v", err)
	}
	if err := s.SaveKeyring(ctx, []byte{}, 1); err != nil {
		t.Fatal(err)
	}
	if blob, v, err := s.LoadKeyring(ctx); blob == nil || len(blob) != 0 || v != 2 || err != nil {
		t.Fatalf("LoadKeyring = %q, %d, %v", blob, v, err)
	}
}

// TestUnavailable: a cancelled context, a closed store and a corrupt record
// all give ErrUnavailable, never a record.
func TestUnavailable(t *testing.T) {
	s := newTestStore(t, nil)
	r := newRecord(t, "frank", t0)
	mustCreate(t, s, r, 0)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	checkAll := func(what string, ctx context.Context, wantCtx bool) {
		t.Helper()
		var errs []error
		add := func(err error) { errs = append(errs, err) }
		_, err := s.Get(ctx, r.ID)
		add(err)
		_, err = s.Create(ctx, newRecord(t, "frank", t0), 1)
		add(err)
		add(s.Update(ctx, r))
		_, err = s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current})
		add(err)
		add(s.Revoke(ctx, r.ID, "x", t0))
		_, err = s.RevokeSubject(ctx, "frank", store.ID{}, "x", t0)
		add(err)
		_, err = s.List(ctx, "frank", t0)
		add(err)
		_, err = s.Sweep(ctx, t0)
		add(err)
		_, _, err = s.LoadKeyring(ctx)
		add(err)
		add(s.SaveKeyring(ctx, nil, 0))
		add(s.Ping(ctx))
		for i, err := range errs {
			if !errors.Is(err, store.ErrUnavailable) || (wantCtx && !errors.Is(err, context.Canceled)) {
				t.Errorf("%s: call %d: %v, want ErrUnavailable", what, i, err)
			}
		}
	}
	checkAll("cancelled context", ctx, true)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	// Corrupt the record.
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).Put(r.ID[:], []byte("garbage"))
	})
	got, err := s.Get(t.Context(), r.ID)
	if got != nil || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Get of a corrupt record = %v, %v", got, err)
	}
	if _, err := s.List(t.Context(), "frank", t0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("List with a corrupt record: %v", err)
	}
	if err := s.Update(t.Context(), r); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Update of a corrupt record: %v", err)
	}
	// Sweep removes it once expired, rather than failing forever.
	if n, err := s.Sweep(t.Context(), r.Deadline()); n != 1 || err != nil {
		t.Errorf("Sweep of an expired corrupt record = %d, %v", n, err)
	}
	if _, err := s.List(t.Context(), "frank", t0); err != nil {
		t.Errorf("List after sweeping the corrupt record: %v", err)
	}
	if err := checkDB(s.db); err != nil {
		t.Error(err)
	}

	// Closed.
	s2, err := Open(filepath.Join(t.TempDir(), "closed.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s = s2
	checkAll("closed store", t.Context(), false)
	s2.Close()
}

// TestConcurrentWriters drives the group commit: many goroutines create,
// update with CAS and revoke at once; every acknowledged write is there and
// the indexes stay consistent.
func TestConcurrentWriters(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	shared := newRecord(t, "shared", t0)
	mustCreate(t, s, shared, 0)

	const workers, each = 16, 10
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		created  []store.ID
		updates  int
		failures []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := newRecord(t, fmt.Sprintf("w%d", w%4), t0.Add(time.Duration(i)*time.Second))
				if _, err := s.Create(ctx, r, 5); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					continue
				}
				// CAS increment on the shared record, retried on conflict.
				for {
					cur, err := s.Get(ctx, shared.ID)
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
						break
					}
					c := cur.Clone()
					c.LastSeenAt = c.LastSeenAt.Add(time.Nanosecond)
					err = s.Update(ctx, c)
					if errors.Is(err, store.ErrConflict) {
						continue
					}
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
					break
				}
				mu.Lock()
				created = append(created, r.ID)
				updates++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %v", len(failures), failures[0])
	}
	if got := mustGet(t, s, shared.ID); got.Version != uint64(1+updates) {
		t.Errorf("shared record at version %d after %d CAS updates, want %d", got.Version, updates, 1+updates)
	}
	for _, id := range created {
		mustGet(t, s, id)
	}
	for w := range 4 {
		if l, err := s.List(ctx, fmt.Sprintf("w%d", w), t0); err != nil || len(l) != 5 {
			t.Errorf("subject w%d has %d live sessions, want 5 (max): %v", w, len(l), err)
		}
	}
}

// TestGroupCommitIsolation: a writer whose function fails mid-transaction
// rolls back only its own changes; the writers committed with it succeed.
func TestGroupCommitIsolation(t *testing.T) {
	s := newTestStore(t, nil)
	ctx := t.Context()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.write(ctx, "test", func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return boom // after a write: must be rolled back
				case 2:
					panic("kaboom")
				case 3:
					return store.ErrConflict // a verdict (after a write: see below)
				}
				return nil
			})
		})
	}
	wg.Wait()
	s.db.View(func(tx *bolt.Tx) error {
		for i, err := range errs {
			v := tx.Bucket(bucketMeta).Get(fmt.Appendf(nil, "k%d", i))
			switch i % 4 {
			case 0:
				if err != nil || v == nil {
					t.Errorf("writer %d: %v, stored %v", i, err, v != nil)
				}
			case 1, 2:
				if !errors.Is(err, store.ErrUnavailable) || v != nil {
					t.Errorf("failing writer %d: %v, stored %v", i, err, v != nil)
				}
				if i%4 == 1 && !errors.Is(err, boom) {
					t.Errorf("failing writer %d lost its error: %v", i, err)
				}
			case 3:
				// A verdict returned after a write breaks the write
				// contract; the error must still reach the caller.
				if !errors.Is(err, store.ErrConflict) {
					t.Errorf("writer %d: %v", i, err)
				}
			}
		}
		return nil
	})
}

// TestWriteDeadlineWhileQueued: while a commit is stalled (a hung disk,
// simulated by a blocking write), queued writers whose context ends return
// ErrUnavailable at once, and the queue still drains afterwards, whichever
// way the race between cancellation and promotion to leader goes.
func TestWriteDeadlineWhileQueued(t *testing.T) {
	s := newTestStore(t, &Options{NoSync: true})
	for i := range 50 {
		release := make(chan struct{})
		leaderIn := make(chan struct{})
		leaderDone := make(chan error, 1)
		go func() {
			leaderDone <- s.write(t.Context(), "stall", func(tx *bolt.Tx) error {
				close(leaderIn)
				<-release
				return nil
			})
		}()
		<-leaderIn

		ctx, cancel := context.WithCancel(t.Context())
		w2 := make(chan error, 1)
		go func() { w2 <- s.write(ctx, "w2", func(tx *bolt.Tx) error { return nil }) }()
		w3 := make(chan error, 1)
		go func() {
			w3 <- s.write(t.Context(), "w3", func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "w3-%d", i), []byte{1})
			})
		}()
		// Wait until both are queued.
		for {
			s.mu.Lock()
			n := len(s.queue)
			s.mu.Unlock()
			if n == 2 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if i%2 == 0 {
			cancel()
			if err := <-w2; !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled queued writer: %v", err)
			}
			close(release)
		} else {
			// Race cancellation against promotion.
			close(release)
			cancel()
			if err := <-w2; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("writer racing cancellation: %v", err)
			}
		}
		select {
		case err := <-w3:
			if err != nil {
				t.Fatalf("writer behind a cancelled one: %v", err)
			}
		case <-time.After(30 * time.Second): // a deadlock, not a slow machine
			t.Fatal("queue did not drain after a queued writer gave up")
		}
		if err := <-leaderDone; err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading || len(s.queue) != 0 {
		t.Errorf("after all writes: leading %v, %d queued", s.leading, len(s.queue))
	}
}
