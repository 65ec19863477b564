package storetest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/latch-sessions/latch/store"
)

var revokeTests = []test{
	{
		name:   "Revoke/NeverLiveAgain",
		clause: "A revoked record is never live again: Update and RotateRefresh on it fail with ErrConflict.",
		run: func(t *T) {
			r := t.record(t.subject("dead"), t.now)
			t.create(r)
			cur := t.get(r.ID).Clone()
			at := t.now.Add(time.Second)
			if err := t.s.Revoke(t.ctx, r.ID, store.ReasonAdmin, at); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			tomb, err := t.s.Get(t.ctx, r.ID)
			if errors.Is(err, store.ErrNotFound) {
				// The store discards revoked records; nothing can bring
				// them back.
				t.wantErr("Update of a revoked, discarded record", t.s.Update(t.ctx, cur), store.ErrNotFound)
				return
			}
			if err != nil {
				t.Fatalf("Get after Revoke: %v", err)
			}
			tomb = tomb.Clone()

			// Update at the version read before the revocation, and at the
			// current one with RevokedAt cleared: both refused.
			t.wantErr("Update at the pre-revocation version", t.s.Update(t.ctx, cur), store.ErrConflict)
			undo := tomb.Clone()
			undo.RevokedAt, undo.RevokeReason = time.Time{}, ""
			t.wantErr("Update of a revoked record at its current version", t.s.Update(t.ctx, undo), store.ErrConflict)

			next := store.Refresh{Key: r.Refresh.Key, Current: store.Hash{7}, Previous: r.Refresh.Current, RotatedAt: at, Generation: 1}
			got, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: at, IdleExpiresAt: at.Add(30 * time.Minute)})
			t.wantErr("RotateRefresh of a revoked record with the current hash", err, store.ErrConflict)
			if got == nil {
				t.Errorf("RotateRefresh of a revoked record returned no record with ErrConflict")
			} else {
				t.wantSame("record returned by RotateRefresh of a revoked record", got, tomb)
			}
			final := t.get(r.ID)
			t.wantSame("Get after refused writes to a revoked record", final, tomb)
			if final.Live(t.now) {
				t.Errorf("a revoked record became live")
			}
			if ids := t.listIDs(r.Subject, t.now); len(ids) != 0 {
				t.Errorf("List returned a revoked record")
			}
		},
	},
	{
		name:   "RevokeSubject/Basic",
		clause: "RevokeSubject revokes every unrevoked session of subject except the one with ID except (the zero ID excepts none), and returns the revoked IDs.",
		run: func(t *T) {
			sub, other := t.subject("all"), t.subject("other")
			var mine, theirs []*store.Record
			for i := range 5 {
				r := t.record(sub, t.now.Add(time.Duration(i)*time.Second))
				t.create(r)
				mine = append(mine, r)
			}
			for i := range 2 {
				r := t.record(other, t.now.Add(time.Duration(i)*time.Second))
				t.create(r)
				theirs = append(theirs, r)
			}
			// Except one; an already-revoked session is not revoked again.
			if err := t.s.Revoke(t.ctx, mine[4].ID, store.ReasonLogout, t.now.Add(time.Minute)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			at := t.now.Add(2 * time.Minute)
			ids, err := t.s.RevokeSubject(t.ctx, sub, mine[0].ID, store.ReasonRevokeAll, at)
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if want := []store.ID{mine[1].ID, mine[2].ID, mine[3].ID}; !sameIDs(ids, want) {
				t.Errorf("RevokeSubject with except returned %d IDs, want the %d live sessions other than the excepted one", len(ids), len(want))
			}
			for _, r := range mine[1:4] {
				want := with(r, 2)
				want.RevokedAt, want.RevokeReason = at, store.ReasonRevokeAll
				if got, err := t.s.Get(t.ctx, r.ID); err == nil {
					t.wantSame("a session revoked by RevokeSubject", got, want)
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get: %v", err)
				}
			}
			if got, err := t.s.Get(t.ctx, mine[4].ID); err == nil && (got.RevokeReason != store.ReasonLogout || got.Version != 2) {
				t.Errorf("RevokeSubject rewrote a session that was already revoked")
			}
			t.wantSame("the excepted session", t.get(mine[0].ID), with(mine[0], 1))
			for _, r := range theirs {
				t.wantSame("another subject's session", t.get(r.ID), with(r, 1))
			}
			if ids := t.listIDs(sub, at); len(ids) != 1 || ids[0] != mine[0].ID {
				t.Errorf("List after RevokeSubject returned %d sessions, want only the excepted one", len(ids))
			}

			// The zero ID excepts none; a second call finds nothing left.
			ids, err = t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, at)
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if len(ids) != 1 || ids[0] != mine[0].ID {
				t.Errorf("RevokeSubject with the zero ID returned %d IDs, want the one remaining session", len(ids))
			}
			ids, err = t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, at)
			if err != nil || len(ids) != 0 {
				t.Errorf("RevokeSubject of a subject with no live sessions: %d IDs, error %v; want none", len(ids), err)
			}
			ids, err = t.s.RevokeSubject(t.ctx, t.subject("nobody"), store.ID{}, store.ReasonRevokeAll, at)
			if err != nil || len(ids) != 0 {
				t.Errorf("RevokeSubject of an unknown subject: %d IDs, error %v; want none", len(ids), err)
			}
			// Excepting another subject's session excepts nothing here.
			if ids := t.listIDs(other, at); len(ids) != 2 {
				t.Errorf("another subject lists %d sessions after RevokeSubject, want 2", len(ids))
			}
		},
	},
	{
		name:   "RevokeSubject/ExpiredByAt",
		clause: "RevokeSubject revokes every unrevoked session of subject, expired by at or not (at is the revocation's time): a caller whose clock runs ahead of the other replicas' would otherwise skip sessions they still accept, and answer that it revoked them all.",
		run: func(t *T) {
			sub := t.subject("ahead")
			r := t.record(sub, t.now)
			r.IdleExpiresAt = t.now.Add(time.Minute)
			t.create(r)
			// A replica whose clock is an hour ahead revokes the subject:
			// by its clock the session expired, by the store's (and the
			// other replicas') it is live.
			at := t.now.Add(time.Hour)
			ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, at)
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if len(ids) != 1 || ids[0] != r.ID {
				t.Errorf("RevokeSubject at a now past the session's deadline returned %d IDs, want the session", len(ids))
			}
			got := t.get(r.ID)
			if !got.Revoked() || !got.RevokedAt.Equal(at) || got.RevokeReason != store.ReasonRevokeAll {
				t.Errorf("the session is not revoked (revoked at %v, reason %q): another replica still accepts it", got.RevokedAt, got.RevokeReason)
			}
		},
	},
	{
		name:   "SubjectIndex/TagCollision",
		clause: "Every store can list a subject's live sessions and revoke them all without scanning its whole keyspace. Subjects that share a SubjectTag are still distinct subjects.",
		run: func(t *T) {
			a, b := collidingSubjects(t)
			var as, bs []*store.Record
			for i := range 2 {
				ra, rb := t.record(a, t.now.Add(time.Duration(i)*time.Second)), t.record(b, t.now.Add(time.Duration(i)*time.Second))
				t.create(ra)
				t.create(rb)
				as, bs = append(as, ra), append(bs, rb)
			}
			if ids := t.listIDs(a, t.now); !sameIDs(ids, []store.ID{as[0].ID, as[1].ID}) {
				t.Errorf("List of one of two subjects sharing a tag returned %d sessions, want its own 2", len(ids))
			}
			na := t.record(a, t.now.Add(5*time.Second))
			ev, err := t.s.Create(t.ctx, na, 2)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if len(ev) != 1 || ev[0] != as[0].ID {
				t.Errorf("Create with max 2 evicted %d sessions, want the subject's least recently seen one (not the other subject's)", len(ev))
			}
			ids, err := t.s.RevokeSubject(t.ctx, a, store.ID{}, store.ReasonRevokeAll, t.now.Add(time.Minute))
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if !sameIDs(ids, []store.ID{as[1].ID, na.ID}) {
				t.Errorf("RevokeSubject returned %d IDs, want the subject's 2 live sessions only", len(ids))
			}
			for _, r := range bs {
				t.wantSame("a session of a subject sharing the tag", t.get(r.ID), with(r, 1))
			}
			if ids := t.listIDs(b, t.now); len(ids) != 2 {
				t.Errorf("the other subject sharing the tag lists %d sessions, want 2", len(ids))
			}
		},
	},
}

// collidingSubjects returns two distinct subjects with the same SubjectTag.
func collidingSubjects(t *T) (string, string) {
	prefix := t.subject("tag")
	seen := map[uint16]string{}
	for i := 0; ; i++ {
		s := fmt.Sprintf("%s-%d", prefix, i)
		tag := store.SubjectTag(s)
		if o, ok := seen[tag]; ok {
			return o, s
		}
		seen[tag] = s
	}
}

var listTests = []test{
	{
		name:   "List/OrderAndLiveness",
		clause: "List returns the subject's sessions that are live at now, most recently seen first (ties: most recently created first).",
		run: func(t *T) {
			sub := t.subject("list")
			now := t.now.Add(10 * time.Second)
			mk := func(created, seen time.Duration) *store.Record {
				r := t.record(sub, t.now.Add(created))
				r.LastSeenAt = t.now.Add(seen)
				return r
			}
			r1 := mk(0, 5*time.Second)
			r2 := mk(time.Second, 2*time.Second)
			r3 := mk(2*time.Second, 2*time.Second) // ties r2, created later
			r4 := mk(3*time.Second, 4*time.Second)
			r5 := mk(4*time.Second, 9*time.Second) // revoked
			r6 := mk(0, 8*time.Second)             // idle deadline exactly now: dead
			r6.IdleExpiresAt = now
			r7 := mk(0, 500*time.Millisecond) // absolute deadline 1ns after now: live
			r7.ExpiresAt = now.Add(1)
			r8 := mk(0, 7*time.Second) // absolute deadline passed, idle not
			r8.ExpiresAt = now.Add(-time.Millisecond)
			for _, r := range []*store.Record{r6, r3, r7, r1, r5, r8, r2, r4} {
				t.create(r)
			}
			if err := t.s.Revoke(t.ctx, r5.ID, store.ReasonLogout, t.now.Add(9*time.Second)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			all := []*store.Record{r1, r2, r3, r4, r5, r6, r7, r8}
			want := []*store.Record{r1, r4, r3, r2, r7}
			got := t.list(sub, now)
			if !slices.Equal(ids(got), ids(want)) {
				t.Errorf("List returned %s, want %s (by LastSeenAt desc, then CreatedAt desc; only live at now)", names(got, all), names(want, all))
			}
			for i := range min(len(got), len(want)) {
				if got[i].ID == want[i].ID {
					t.wantSame("a listed record", got[i], with(want[i], 1))
				}
			}
			// Earlier, r6 and r8 are live too; later, r7 is gone.
			if got := t.list(sub, now.Add(-time.Second)); len(got) != 7 {
				t.Errorf("List one second earlier returned %d sessions, want 7 (the revoked one excluded)", len(got))
			}
			if got := t.list(sub, now.Add(1)); !slices.Equal(ids(got), ids(want[:4])) {
				t.Errorf("List at an absolute deadline returned %s, want %s", names(got, all), names(want[:4], all))
			}
			if got := t.list(t.subject("nobody"), now); len(got) != 0 {
				t.Errorf("List of an unknown subject returned %d sessions", len(got))
			}
		},
	},
	{
		name:   "Create/MaxEviction",
		clause: "If the subject then has more than max live sessions (max > 0), the least recently seen others are revoked with reason \"evicted\", in the same atomic step, and their IDs returned. \"Live\" is judged at rec.CreatedAt.",
		run: func(t *T) {
			sub, other := t.subject("evict"), t.subject("bystander")
			mk := func(created, seen time.Duration) *store.Record {
				r := t.record(sub, t.now.Add(created))
				r.LastSeenAt = t.now.Add(seen)
				return r
			}
			by := t.record(other, t.now)
			t.create(by)
			s1, s2, s3 := mk(0, time.Second), mk(0, 3*time.Second), mk(0, 2*time.Second)
			for _, r := range []*store.Record{s1, s2, s3} {
				if ev, err := t.s.Create(t.ctx, r, 3); err != nil || len(ev) != 0 {
					t.Fatalf("Create under the limit: evicted %d, error %v; want none", len(ev), err)
				}
			}
			n4 := mk(4*time.Second, 4*time.Second)
			ev, err := t.s.Create(t.ctx, n4, 3)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if len(ev) != 1 || ev[0] != s1.ID {
				t.Errorf("Create over max 3 evicted %d sessions, want exactly the least recently seen", len(ev))
			}
			if got, err := t.s.Get(t.ctx, s1.ID); err == nil {
				if !got.Revoked() || got.RevokeReason != store.ReasonEvicted || got.Version != 2 {
					t.Errorf("the evicted session: revoked=%v reason %q version %d; want revoked, %q, 2", got.Revoked(), got.RevokeReason, got.Version, store.ReasonEvicted)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			if got := t.listIDs(sub, n4.CreatedAt); !sameIDs(got, []store.ID{n4.ID, s2.ID, s3.ID}) {
				t.Errorf("after eviction List returned %d sessions, want the newest 3", len(got))
			}

			// The new session is never evicted, even when it is the least
			// recently seen; the limit may evict several.
			n5 := mk(5*time.Second, 0)
			ev, err = t.s.Create(t.ctx, n5, 2)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if !sameIDs(ev, []store.ID{s3.ID, s2.ID}) {
				t.Errorf("Create with max 2 over 3 live sessions evicted %d, want the 2 least recently seen others", len(ev))
			}
			if got := t.listIDs(sub, n5.CreatedAt); !sameIDs(got, []store.ID{n4.ID, n5.ID}) {
				t.Errorf("after eviction List returned %d sessions, want the 2 kept", len(got))
			}

			// Dead sessions do not count and are not evicted: liveness is
			// judged at the new record's CreatedAt.
			e := mk(5*time.Second, 5*time.Second)
			e.IdleExpiresAt = t.now.Add(8 * time.Second)
			t.create(e)
			n6 := mk(10*time.Second, 10*time.Second)
			ev, err = t.s.Create(t.ctx, n6, 3)
			if err != nil || len(ev) != 0 {
				t.Errorf("Create with 2 live + 1 expired sessions and max 3: evicted %d, error %v; want none", len(ev), err)
			}
			if got, err := t.s.Get(t.ctx, e.ID); err == nil && got.Revoked() {
				t.Errorf("an expired session was revoked by eviction")
			}
			// max 0 means no limit.
			for i := range 3 {
				if ev, err := t.s.Create(t.ctx, mk(11*time.Second, time.Duration(11+i)*time.Second), 0); err != nil || len(ev) != 0 {
					t.Errorf("Create with max 0: evicted %d, error %v; want none", len(ev), err)
				}
			}
			if got := t.listIDs(sub, t.now.Add(11*time.Second)); len(got) != 6 {
				t.Errorf("List returned %d sessions, want 6", len(got))
			}
			t.wantSame("another subject's session", t.get(by.ID), with(by, 1))
		},
	},
	{
		name:   "List/ExtendedAfterForgotten",
		clause: "List may drop index entries of records that are not live at now — gone, revoked, or past their deadline by the caller's now — provided a write that makes such a record live again (Update or RotateRefresh moving its deadline) puts it back: List and RevokeSubject never miss a session that is live at the now they are given.",
		run: func(t *T) {
			sub := t.subject("forget")
			a, b := t.record(sub, t.now), t.record(sub, t.now)
			a.IdleExpiresAt = t.now.Add(time.Minute)
			b.IdleExpiresAt = t.now.Add(time.Minute)
			t.create(a)
			t.create(b)
			later := t.now.Add(2 * time.Minute)
			if ids := t.listIDs(sub, later); len(ids) != 0 {
				t.Errorf("List after the idle deadline returned %d sessions", len(ids))
			}
			// The records are still there (the real clock has not reached
			// their deadline), and writes extend them.
			upd := t.get(a.ID).Clone()
			upd.LastSeenAt, upd.IdleExpiresAt = t.now.Add(90*time.Second), t.now.Add(30*time.Minute)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			next := store.Refresh{Key: b.Refresh.Key, Current: store.Hash{5}, Previous: b.Refresh.Current, RotatedAt: t.now.Add(90 * time.Second), Generation: 1}
			if _, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: b.ID, Expect: b.Refresh.Current, Next: next, LastSeenAt: next.RotatedAt, IdleExpiresAt: t.now.Add(30 * time.Minute)}); err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			if ids := t.listIDs(sub, later); !sameIDs(ids, []store.ID{a.ID, b.ID}) {
				t.Errorf("List after Update and RotateRefresh extended both sessions returned %d, want 2: the subject index lost live sessions", len(ids))
			}
			ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, later)
			if err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if !sameIDs(ids, []store.ID{a.ID, b.ID}) {
				t.Errorf("RevokeSubject returned %d IDs, want the 2 extended sessions: a live session escaped revoke-all", len(ids))
			}
			for _, id := range []store.ID{a.ID, b.ID} {
				if got := t.get(id); !got.Revoked() {
					t.Errorf("RevokeSubject left a live session unrevoked")
				}
			}
		},
	},
}

func ids(rs []*store.Record) []store.ID {
	out := make([]store.ID, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// names describes rs by each record's position in ref ("r1" is ref[0]), so
// a failure shows the order without printing IDs.
func names(rs, ref []*store.Record) string {
	var out []string
	for _, r := range rs {
		n := "?"
		for i, x := range ref {
			if x.ID == r.ID {
				n = fmt.Sprintf("r%d", i+1)
			}
		}
		out = append(out, n)
	}
	return fmt.Sprint(out)
}
