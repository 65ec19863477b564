package storetest

import (
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/latch-sessions/latch/store"
)

const sweepClause = "Sweep deletes records (and tombstones) whose deadline is at or before now, with their index entries, and returns how many it deleted."

var expiryTests = []test{
	{
		name:   "Expiry/IdleAndAbsolute",
		clause: "A record is live until Record.Deadline, the earlier of its idle and absolute deadlines. Listing and eviction take the caller's notion of now.",
		run: func(t *T) {
			sub := t.subject("exp")
			idle := t.record(sub, t.now)
			idle.IdleExpiresAt = t.now.Add(10 * time.Minute)
			abs := t.record(sub, t.now)
			abs.LastSeenAt = t.now.Add(time.Second)
			abs.ExpiresAt = t.now.Add(20 * time.Minute)
			t.create(idle)
			t.create(abs)
			check := func(at time.Time, want ...*store.Record) {
				t.Helper()
				if got := t.listIDs(sub, at); !slices.Equal(got, ids(want)) {
					t.Errorf("List at %v after creation returned %d sessions, want %d", at.Sub(t.now), len(got), len(want))
				}
			}
			check(idle.IdleExpiresAt.Add(-1), abs, idle)
			check(idle.IdleExpiresAt, abs)
			check(abs.ExpiresAt.Add(-1), abs)
			check(abs.ExpiresAt)
			// Listing at a later now does not make the records go away
			// before their deadlines on the store's clock: they are still
			// there, and live again for an earlier now.
			t.get(idle.ID)
			t.get(abs.ID)
		},
	},
	{
		name:   "Sweep/Deadlines",
		clause: sweepClause,
		run: func(t *T) {
			sw := sweeper(t)
			sub := t.subject("sweep")
			mk := func(idle, abs time.Duration) *store.Record {
				r := t.record(sub, t.now)
				r.IdleExpiresAt, r.ExpiresAt = t.now.Add(idle), t.now.Add(abs)
				t.create(r)
				return r
			}
			a := mk(10*time.Minute, 24*time.Hour)
			b := mk(30*time.Minute, 20*time.Minute)
			c := mk(10*time.Minute, 24*time.Hour)
			d := mk(40*time.Minute, 24*time.Hour)
			if err := t.s.Revoke(t.ctx, c.ID, store.ReasonLogout, t.now.Add(time.Second)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			sweep := func(at time.Time, want int) {
				t.Helper()
				n, err := sw.Sweep(t.ctx, at)
				if err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				if n != want {
					t.Errorf("Sweep at deadline%+v deleted %d, want %d", at.Sub(a.IdleExpiresAt), n, want)
				}
			}
			gone := func(rs ...*store.Record) {
				t.Helper()
				for _, r := range rs {
					if _, err := t.s.Get(t.ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Get of a swept record: %v, want ErrNotFound", err)
					}
				}
			}
			sweep(a.IdleExpiresAt.Add(-1), 0)
			for _, r := range []*store.Record{a, b, c, d} {
				t.get(r.ID)
			}
			sweep(a.IdleExpiresAt, 2) // a, and the tombstone c: "at or before now"
			gone(a, c)
			t.get(b.ID)
			t.get(d.ID)
			if got := t.listIDs(sub, t.now); !sameIDs(got, []store.ID{b.ID, d.ID}) {
				t.Errorf("List (at an earlier now) after Sweep returned %d sessions, want the 2 unswept: the index kept a dead entry", len(got))
			}
			sweep(b.ExpiresAt, 1)
			gone(b)
			sweep(t.now.AddDate(100, 0, 0), 1)
			gone(d)
			sweep(t.now.AddDate(100, 0, 0), 0)
			if got := t.listIDs(sub, t.now); len(got) != 0 {
				t.Errorf("List after sweeping everything returned %d sessions", len(got))
			}
			if got, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, t.now); err != nil || len(got) != 0 {
				t.Errorf("RevokeSubject after sweeping everything: %d IDs, error %v; want none", len(got), err)
			}
			// The subject can start again.
			e := mk(time.Hour, 24*time.Hour)
			if got := t.listIDs(sub, t.now); len(got) != 1 || got[0] != e.ID {
				t.Errorf("List of a swept subject's new session returned %d sessions, want 1", len(got))
			}
		},
	},
	{
		name:   "Sweep/MovedDeadlines",
		clause: sweepClause + " A write that moves a record's deadline moves what Sweep deletes.",
		run: func(t *T) {
			sw := sweeper(t)
			sub := t.subject("move")
			a, b := t.record(sub, t.now), t.record(sub, t.now)
			a.IdleExpiresAt = t.now.Add(10 * time.Minute)
			b.IdleExpiresAt = t.now.Add(10 * time.Minute)
			t.create(a)
			t.create(b)
			sweep := func(at time.Duration, want int) {
				t.Helper()
				n, err := sw.Sweep(t.ctx, t.now.Add(at))
				if err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				if n != want {
					t.Errorf("Sweep at +%v deleted %d, want %d", at, n, want)
				}
			}
			upd := t.get(a.ID).Clone()
			upd.IdleExpiresAt = t.now.Add(20 * time.Minute)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			next := store.Refresh{Key: b.Refresh.Key, Current: store.Hash{8}, Previous: b.Refresh.Current, RotatedAt: t.now, Generation: 1}
			if _, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: b.ID, Expect: b.Refresh.Current, Next: next, LastSeenAt: t.now, IdleExpiresAt: t.now.Add(20 * time.Minute)}); err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			sweep(15*time.Minute, 0)
			t.get(a.ID)
			t.get(b.ID)

			upd = t.get(a.ID).Clone()
			upd.IdleExpiresAt = t.now.Add(5 * time.Minute)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			sweep(6*time.Minute, 1)
			if _, err := t.s.Get(t.ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of a record swept after its deadline moved earlier: %v, want ErrNotFound", err)
			}
			sweep(20*time.Minute, 1)
			if _, err := t.s.Get(t.ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of a swept record: %v, want ErrNotFound", err)
			}
		},
	},
	{
		name:   "Sweep/Many",
		clause: sweepClause + " It must not scan every record to find them.",
		run: func(t *T) {
			sw := sweeper(t)
			const n, subjects = 300, 7
			rng := rand.New(rand.NewPCG(1, 2))
			var subs []string
			for i := range subjects {
				subs = append(subs, t.subject(string(rune('a'+i))))
			}
			var all []*store.Record
			for i := range n {
				r := t.record(subs[i%subjects], t.now)
				r.LastSeenAt = t.now.Add(time.Duration(i) * time.Microsecond)
				r.IdleExpiresAt = t.now.Add(time.Duration(1+rng.IntN(3600)) * time.Second)
				r.ExpiresAt = t.now.Add(time.Duration(1+rng.IntN(7200)) * time.Second)
				t.create(r)
				if i%5 == 0 {
					if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now); err != nil {
						t.Fatalf("Revoke: %v", err)
					}
				}
				all = append(all, r)
			}
			swept := 0
			for _, step := range []time.Duration{0, 10 * time.Minute, 25 * time.Minute, 40 * time.Minute, 59 * time.Minute, 3 * time.Hour} {
				at := t.now.Add(step)
				got, err := sw.Sweep(t.ctx, at)
				if err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				due := 0
				for _, r := range all {
					if !r.Deadline().After(at) {
						due++
					}
				}
				if got != due-swept {
					t.Errorf("Sweep at +%v deleted %d records, want %d", step, got, due-swept)
				}
				swept = due
				for _, s := range subs {
					var want []store.ID
					for i, r := range all {
						if r.Subject == s && i%5 != 0 && r.Deadline().After(at) {
							want = append(want, r.ID)
						}
					}
					if got := t.listIDs(s, t.now); !sameIDs(got, want) {
						t.Errorf("after Sweep at +%v, List (at an earlier now) returned %d sessions, want the %d unswept live ones", step, len(got), len(want))
					}
				}
			}
			for _, r := range all {
				if _, err := t.s.Get(t.ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get after sweeping past every deadline: %v, want ErrNotFound", err)
				}
			}
		},
	},
	{
		name:   "Expiry/NativeTTL",
		clause: "Stores with native TTL (Redis) discard a record from its deadline on themselves; a subject's index never keeps dead entries for long.",
		run: func(t *T) {
			if _, ok := t.s.(store.Sweeper); ok {
				t.Skip("store implements store.Sweeper; expiry is checked by the Sweep subtests")
			}
			sub := t.subject("ttl")
			real := time.Now().UTC()
			mk := func(idle, abs time.Duration) *store.Record {
				r := t.record(sub, real)
				r.IdleExpiresAt, r.ExpiresAt = real.Add(idle), real.Add(abs)
				t.create(r)
				return r
			}
			a := mk(time.Second, 24*time.Hour)
			b := mk(30*time.Minute, 1500*time.Millisecond)
			c := mk(time.Second, 24*time.Hour)
			keep := mk(30*time.Minute, 24*time.Hour)
			if err := t.s.Revoke(t.ctx, c.ID, store.ReasonLogout, real); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			limit := time.Now().Add(10 * time.Second)
			for _, r := range []*store.Record{a, b, c} {
				for {
					_, err := t.s.Get(t.ctx, r.ID)
					if errors.Is(err, store.ErrNotFound) {
						break
					}
					if err != nil {
						t.Fatalf("Get: %v", err)
					}
					if time.Now().After(limit) {
						t.Fatalf("a record was still stored 10s after its deadline (%v ahead at creation)", r.Deadline().Sub(real))
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			t.get(keep.ID)
			if got := t.listIDs(sub, real); len(got) != 1 || got[0] != keep.ID {
				t.Errorf("List (at the creation time) after expiry returned %d sessions, want only the unexpired one", len(got))
			}
			ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, real)
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if len(ids) != 1 || ids[0] != keep.ID {
				t.Errorf("RevokeSubject after expiry returned %d IDs, want only the unexpired session", len(ids))
			}
		},
	},
}

// sweeper returns the store as a Sweeper or skips the subtest.
func sweeper(t *T) store.Sweeper {
	t.Helper()
	sw, ok := t.s.(store.Sweeper)
	if !ok {
		t.Skip("store does not implement store.Sweeper; expiry is checked by Expiry/NativeTTL")
	}
	return sw
}
