package storetest

import (
	"errors"
	"time"

	"github.com/latch-sessions/latch/store"
)

var crudTests = []test{
	{
		name:   "Get/NotFound",
		clause: "Get returns the record with id, revoked or not, or ErrNotFound.",
		run: func(t *T) {
			r := t.record(t.subject("nf"), t.now)
			got, err := t.s.Get(t.ctx, r.ID)
			t.wantErr("Get of an ID never stored", err, store.ErrNotFound)
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Get of an ID never stored: error %v also matches ErrUnavailable", err)
			}
			if got != nil {
				t.Errorf("Get of an ID never stored returned a record")
			}
		},
	},
	{
		name:   "Create/RoundTrip",
		clause: "Create stores a new record (its Version is ignored and stored as 1) and adds it to its subject's index.",
		run: func(t *T) {
			r := t.record(t.subject("rt"), t.now)
			// Every field set, times at nanosecond precision and in a
			// non-UTC zone: a store keeps the instants.
			r.Refresh.Previous[0] = 1
			r.Refresh.RotatedAt = t.now.Add(-time.Minute + 7)
			r.Refresh.Generation = 3
			r.AuthTime = t.now.In(time.FixedZone("UTC+5", 5*3600)).Add(-123456789)
			r.IP = "2001:db8::1"
			want := with(r, 1)
			t.create(r)
			t.wantSame("Get after Create", t.get(r.ID), want)
			if got := t.list(r.Subject, t.now); len(got) != 1 || got[0].ID != r.ID {
				t.Errorf("List after Create returned %d records, want the created one", len(got))
			} else {
				t.wantSame("List after Create", got[0], want)
			}
		},
	},
	{
		name:   "Create/NilValues",
		clause: "Create stores a new record and Get returns it: Data and Claims may be nil; ACR, AMR and JKT may be empty (an unbound session, no authentication context).",
		run: func(t *T) {
			r := t.record(t.subject("nil"), t.now)
			r.Data, r.Claims, r.IP, r.UserAgent = nil, nil, "", ""
			r.ACR, r.AMR, r.JKT = "", nil, [32]byte{}
			t.create(r)
			got := t.get(r.ID)
			if len(got.Data) != 0 || len(got.Claims) != 0 || got.IP != "" || got.UserAgent != "" {
				t.Errorf("Get returned non-empty Data, Claims, IP or UserAgent for a record stored without them")
			}
			if got.ACR != "" || got.AMR != nil || got.JKT != [32]byte{} {
				t.Errorf("Get returned an ACR, AMR (non-nil) or JKT for a record stored without them")
			}
			t.wantSame("Get of a record without Data, Claims, ACR, AMR and JKT", got, with(r, 1))
		},
	},
	{
		name:   "Create/Exists",
		clause: "Create fails with ErrExists if the ID is taken.",
		run: func(t *T) {
			sub := t.subject("ex")
			r := t.record(sub, t.now)
			t.create(r)
			dup := t.record(sub, t.now.Add(time.Second))
			dup.ID = r.ID
			_, err := t.s.Create(t.ctx, dup, 1)
			t.wantErr("second Create with the same ID", err, store.ErrExists)
			t.wantSame("Get after a refused Create", t.get(r.ID), with(r, 1))

			// A revoked record kept as a tombstone still holds its ID.
			if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now.Add(time.Second)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if _, err := t.s.Get(t.ctx, r.ID); err == nil {
				_, err = t.s.Create(t.ctx, dup, 0)
				t.wantErr("Create with the ID of a revoked record", err, store.ErrExists)
				if got := t.get(r.ID); !got.Revoked() {
					t.Errorf("a refused Create brought a revoked record back")
				}
			}
		},
	},
	{
		name:   "Ownership/Arguments",
		clause: "A Record passed to a store is read during the call only; the store keeps its own copy.",
		run: func(t *T) {
			r := t.record(t.subject("own"), t.now)
			want := with(r, 1)
			arg := r.Clone()
			t.create(arg)
			if d := diff(arg, r); d != "" {
				t.Errorf("Create modified the record it was given: %s", d)
			}
			// Scribble over everything the caller owns.
			arg.Data[0], arg.Claims[0] = 'X', 'X'
			arg.Subject, arg.IP = "someone-else", "203.0.113.9"
			arg.VerifierHash[0]++
			arg.LastSeenAt = arg.LastSeenAt.Add(time.Hour)
			arg.Version = 7
			t.wantSame("Get after the caller modified the record it passed to Create", t.get(r.ID), want)

			upd := t.get(r.ID).Clone()
			upd.Data = []byte(`{"cart":4}`)
			sent := upd.Clone()
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if d := diff(upd, sent); d != "" {
				t.Errorf("Update modified the record it was given: %s", d)
			}
			want = with(sent, 2)
			upd.Data[1] = 'X'
			upd.UserAgent = "changed"
			t.wantSame("Get after the caller modified the record it passed to Update", t.get(r.ID), want)
		},
	},
	{
		name:   "Ownership/ReturnedRecordsAreSnapshots",
		clause: "Records returned by a store are shared and read-only: callers must not modify them (use Record.Clone). The store therefore never modifies a record it has handed out.",
		run: func(t *T) {
			sub := t.subject("snap")
			r := t.record(sub, t.now)
			t.create(r)
			got := t.get(r.ID)
			listed := t.list(sub, t.now)
			snap := got.Clone()

			upd := got.Clone()
			upd.Data = []byte(`{"cart":9}`)
			upd.LastSeenAt = t.now.Add(time.Minute)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			next := store.Refresh{Key: r.Refresh.Key, Current: store.Hash{1}, Previous: r.Refresh.Current, RotatedAt: t.now.Add(2 * time.Minute), Generation: 1}
			rotated, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: t.now.Add(2 * time.Minute), IdleExpiresAt: t.now.Add(32 * time.Minute)})
			if err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			rsnap := rotated.Clone()
			if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now.Add(3*time.Minute)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			t.wantSame("a record returned by Get, after later writes", got, snap)
			if len(listed) == 1 {
				t.wantSame("a record returned by List, after later writes", listed[0], snap)
			}
			t.wantSame("a record returned by RotateRefresh, after a later Revoke", rotated, rsnap)
		},
	},
	{
		name:   "Update/CompareAndSwap",
		clause: "Update replaces the stored record with rec if the stored version equals rec.Version and the record is not revoked; the store then writes version rec.Version+1. It fails with ErrConflict otherwise, and with ErrNotFound if there is no record. ID and Subject never change.",
		run: func(t *T) {
			sub := t.subject("cas")
			r := t.record(sub, t.now)
			t.create(r)
			v1 := t.get(r.ID).Clone()

			upd := v1.Clone()
			upd.Data = []byte(`{"cart":5}`)
			upd.LastSeenAt = t.now.Add(time.Minute)
			upd.IdleExpiresAt = t.now.Add(31 * time.Minute)
			upd.IP = "198.51.100.4"
			upd.VerifierHash[0]++
			upd.CSRFSecret[0]++
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update at the stored version: %v", err)
			}
			want := with(upd, 2)
			t.wantSame("Get after Update", t.get(r.ID), want)

			stale := v1.Clone()
			stale.Data = []byte(`{"cart":0}`)
			t.wantErr("Update at a stale version", t.s.Update(t.ctx, stale), store.ErrConflict)
			ahead := want.Clone()
			ahead.Version = 3
			t.wantErr("Update at a version ahead of the stored one", t.s.Update(t.ctx, ahead), store.ErrConflict)
			t.wantSame("Get after refused Updates", t.get(r.ID), want)

			missing := t.record(sub, t.now)
			missing.Version = 1
			t.wantErr("Update of a record never stored", t.s.Update(t.ctx, missing), store.ErrNotFound)
			if _, err := t.s.Get(t.ctx, missing.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Update of a missing record created it (Get: %v)", err)
			}

			// The subject is immutable: an Update that names another one
			// leaves the record in its own subject's index.
			moved := want.Clone()
			moved.Subject = t.subject("elsewhere")
			if err := t.s.Update(t.ctx, moved); err == nil {
				got := t.get(r.ID)
				if got.Subject != sub {
					t.Errorf("Update changed the record's Subject")
				}
				if ids := t.listIDs(sub, t.now); len(ids) != 1 || ids[0] != r.ID {
					t.Errorf("after an Update naming another subject, List of the record's subject returned %d records, want 1", len(ids))
				}
				if ids := t.listIDs(moved.Subject, t.now); len(ids) != 0 {
					t.Errorf("after an Update naming another subject, that subject lists the record")
				}
			} else if !errors.Is(err, store.ErrConflict) {
				t.Logf("Update naming another subject: %v (refusing it is fine)", err)
			}
		},
	},
	{
		name:   "RotateRefresh/Basic",
		clause: "RotateRefresh atomically replaces the refresh state of a live (unrevoked) record if its Refresh.Current equals r.Expect, and records the activity in r. It returns the updated record. If the record's refresh state has moved on (or it is revoked) it returns the stored record together with ErrConflict.",
		run: func(t *T) {
			r := t.record(t.subject("rot"), t.now)
			t.create(r)
			next := store.Refresh{Key: r.Refresh.Key, Previous: r.Refresh.Current, RotatedAt: t.now.Add(time.Minute), Generation: 1}
			next.Current[0], next.Current[31] = 0xAB, 0xCD
			rot := store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: t.now.Add(time.Minute), IdleExpiresAt: t.now.Add(31 * time.Minute)}
			got, err := t.s.RotateRefresh(t.ctx, rot)
			if err != nil {
				t.Fatalf("RotateRefresh with the current hash: %v", err)
			}
			want := with(r, 2)
			want.Refresh = next
			want.LastSeenAt, want.IdleExpiresAt = rot.LastSeenAt, rot.IdleExpiresAt
			t.wantSame("record returned by RotateRefresh", got, want)
			t.wantSame("Get after RotateRefresh", t.get(r.ID), want)

			// Presenting the old hash again: the stored record comes back.
			again := rot
			again.Next.Current = store.Hash{9}
			got, err = t.s.RotateRefresh(t.ctx, again)
			t.wantErr("RotateRefresh with a rotated-away hash", err, store.ErrConflict)
			t.wantSame("record returned with ErrConflict", got, want)
			t.wantSame("Get after a refused RotateRefresh", t.get(r.ID), want)

			missing := rot
			missing.ID = t.record(r.Subject, t.now).ID
			got, err = t.s.RotateRefresh(t.ctx, missing)
			t.wantErr("RotateRefresh of a record never stored", err, store.ErrNotFound)
			if got != nil {
				t.Errorf("RotateRefresh of a record never stored returned a record")
			}
		},
	},
	{
		name:   "Revoke/Basic",
		clause: "Revoke marks the record revoked with reason at time at and removes it from its subject's index. Revoking a revoked record succeeds and changes nothing; a missing record gives ErrNotFound.",
		run: func(t *T) {
			sub := t.subject("rev")
			a, b := t.record(sub, t.now), t.record(sub, t.now.Add(time.Millisecond))
			t.create(a)
			t.create(b)
			at := t.now.Add(time.Second + 5)
			if err := t.s.Revoke(t.ctx, a.ID, store.ReasonLogout, at); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if ids := t.listIDs(sub, t.now.Add(2*time.Second)); len(ids) != 1 || ids[0] != b.ID {
				t.Errorf("List after Revoke returned %d records, want only the unrevoked one", len(ids))
			}
			got, err := t.s.Get(t.ctx, a.ID)
			kept := err == nil
			if kept {
				want := with(a, 2)
				want.RevokedAt, want.RevokeReason = at, store.ReasonLogout
				t.wantSame("Get after Revoke", got, want)
				if got.Live(t.now) {
					t.Errorf("a revoked record is live")
				}
				// Idempotent: a second revoke succeeds and changes nothing.
				if err := t.s.Revoke(t.ctx, a.ID, store.ReasonAdmin, at.Add(time.Hour)); err != nil {
					t.Errorf("revoking a revoked record: %v, want success", err)
				}
				t.wantSame("Get after revoking a revoked record", t.get(a.ID), want)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get after Revoke: %v, want the revoked record or ErrNotFound", err)
			} else if err := t.s.Revoke(t.ctx, a.ID, store.ReasonAdmin, at); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("revoking a revoked (discarded) record: %v", err)
			}
			revoked, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, at.Add(time.Minute))
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if len(revoked) != 1 || revoked[0] != b.ID {
				t.Errorf("RevokeSubject after Revoke returned %d IDs, want only the unrevoked session (the revoked one left the index)", len(revoked))
			}
			t.wantErr("Revoke of a record never stored", t.s.Revoke(t.ctx, t.record(sub, t.now).ID, store.ReasonLogout, at), store.ErrNotFound)
		},
	},
}
