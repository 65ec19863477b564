package storetest

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/latch-sessions/latch/store"
)

var validityTests = []test{
	{
		name:   "Create/Invalid",
		clause: "Create refuses with ErrInvalid, before storing anything, a record Validate refuses: nil, the zero ID, an ID that does not carry SubjectTag(Subject), a Subject outside 1..MaxSubjectLen bytes, a field beyond its bound, a time outside 1678–2262.",
		run: func(t *T) {
			sub := t.subject("inv")
			keep := t.record(sub, t.now)
			t.create(keep)
			refuse := func(what string, r *store.Record) {
				t.Helper()
				// max 1: a Create that got as far as evicting would
				// revoke keep.
				ev, err := t.s.Create(t.ctx, r, 1)
				t.wantErr("Create of "+what, err, store.ErrInvalid)
				if errors.Is(err, store.ErrUnavailable) {
					t.Errorf("Create of %s: error %v also matches ErrUnavailable; a refused record is not a backend failure", what, err)
				}
				if len(ev) != 0 {
					t.Errorf("Create of %s evicted %d sessions", what, len(ev))
				}
				if r != nil && !r.ID.IsZero() {
					if _, err := t.s.Get(t.ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("after a refused Create of %s, Get: %v, want ErrNotFound", what, err)
					}
				}
			}
			mut := func(f func(r *store.Record)) *store.Record {
				r := t.record(sub, t.now.Add(time.Second))
				f(r)
				return r
			}
			refuse("a nil record", nil)
			refuse("a record with the zero ID", mut(func(r *store.Record) { r.ID = store.ID{} }))
			refuse("a record whose ID carries another subject's tag", mut(func(r *store.Record) { r.ID = otherTagID(t, sub) }))
			refuse("a record whose ID is one byte off its subject's tag", mut(func(r *store.Record) { r.ID[1] ^= 1 }))
			refuse("a record with an empty subject", mut(func(r *store.Record) { r.Subject = ""; r.ID = t.id("") }))
			long := longSubject(t.subject("long")+"-") + "x"
			refuse("a record with a subject of MaxSubjectLen+1 bytes", mut(func(r *store.Record) { r.Subject = long; r.ID = t.id(long) }))
			refuse("a record with Data of MaxValueLen+1 bytes", mut(func(r *store.Record) { r.Data = jsonOfLen(store.MaxValueLen+1, 'd') }))
			refuse("a record with Claims of MaxValueLen+1 bytes", mut(func(r *store.Record) { r.Claims = jsonOfLen(store.MaxValueLen+1, 'c') }))
			refuse("a record with an IP of MaxIPLen+1 bytes", mut(func(r *store.Record) { r.IP = strings.Repeat("1", store.MaxIPLen+1) }))
			refuse("a record with a UserAgent of MaxUserAgentLen+1 bytes", mut(func(r *store.Record) { r.UserAgent = strings.Repeat("u", store.MaxUserAgentLen+1) }))
			refuse("a record with a RevokeReason of MaxReasonLen+1 bytes", mut(func(r *store.Record) {
				r.RevokedAt, r.RevokeReason = t.now, strings.Repeat("r", store.MaxReasonLen+1)
			}))
			refuse("a record with an ACR of MaxACRLen+1 bytes", mut(func(r *store.Record) { r.ACR = strings.Repeat("a", store.MaxACRLen+1) }))
			refuse("a record with an ACR holding a space", mut(func(r *store.Record) { r.ACR = "urn:a b" }))
			refuse("a record with an ACR holding a quote", mut(func(r *store.Record) { r.ACR = `urn:"a"` }))
			refuse("a record with an ACR holding a non-ASCII byte", mut(func(r *store.Record) { r.ACR = "urn:ü" }))
			refuse("a record with MaxAMRValues+1 AMR values", mut(func(r *store.Record) {
				r.AMR = slices.Repeat([]string{"pwd"}, store.MaxAMRValues+1)
			}))
			refuse("a record with an AMR value of MaxAMRValueLen+1 bytes", mut(func(r *store.Record) { r.AMR = []string{strings.Repeat("m", store.MaxAMRValueLen+1)} }))
			refuse("a record with an empty AMR value", mut(func(r *store.Record) { r.AMR = []string{"pwd", ""} }))
			refuse("a record with an AMR value holding a space", mut(func(r *store.Record) { r.AMR = []string{"p wd"} }))
			refuse("a record with an AMR value holding a backslash", mut(func(r *store.Record) { r.AMR = []string{`p\d`} }))
			refuse("a record with an AuthTime before 1678", mut(func(r *store.Record) { r.AuthTime = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }))
			refuse("a record with an ExpiresAt after 2262", mut(func(r *store.Record) { r.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }))

			// Update and the revocations refuse what Create refuses.
			stored := t.get(keep.ID).Clone()
			upd := stored.Clone()
			upd.UserAgent = strings.Repeat("u", store.MaxUserAgentLen+1)
			t.wantErr("Update with a UserAgent of MaxUserAgentLen+1 bytes", t.s.Update(t.ctx, upd), store.ErrInvalid)
			upd = stored.Clone()
			upd.Data = jsonOfLen(store.MaxValueLen+1, 'e')
			t.wantErr("Update with Data of MaxValueLen+1 bytes", t.s.Update(t.ctx, upd), store.ErrInvalid)
			longReason := strings.Repeat("r", store.MaxReasonLen+1)
			t.wantErr("Revoke with a reason of MaxReasonLen+1 bytes", t.s.Revoke(t.ctx, keep.ID, longReason, t.now), store.ErrInvalid)
			ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, longReason, t.now)
			t.wantErr("RevokeSubject with a reason of MaxReasonLen+1 bytes", err, store.ErrInvalid)
			if len(ids) != 0 {
				t.Errorf("a refused RevokeSubject returned %d IDs", len(ids))
			}
			t.wantSame("the subject's session after refused writes", t.get(keep.ID), stored)
			if ids := t.listIDs(sub, t.now); len(ids) != 1 || ids[0] != keep.ID {
				t.Errorf("List after refused writes returned %d sessions, want the one stored before", len(ids))
			}
		},
	},
	{
		name:   "Limits/FieldBounds",
		clause: "A store keeps, byte for byte, an IP of up to MaxIPLen, a UserAgent of up to MaxUserAgentLen and a RevokeReason of up to MaxReasonLen bytes; strings are opaque bytes (not necessarily UTF-8).",
		run: func(t *T) {
			sub := t.subject("bounds") + "\x00\xff\xfe"
			r := t.record(sub, t.now)
			r.ID = t.id(sub)
			r.IP = string(binaryOfLen(store.MaxIPLen))
			r.UserAgent = string(binaryOfLen(store.MaxUserAgentLen))
			t.create(r)
			want := with(r, 1)
			t.wantSame("Get of a record with fields at their bounds", t.get(r.ID), want)
			if got := t.list(sub, t.now); len(got) != 1 {
				t.Fatalf("List of a binary subject returned %d sessions, want 1", len(got))
			} else {
				t.wantSame("List of a record with fields at their bounds", got[0], want)
			}
			upd := want.Clone()
			upd.IP = string(binaryOfLen(store.MaxIPLen))
			upd.UserAgent = string(binaryOfLen(store.MaxUserAgentLen))
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update with fields at their bounds: %v", err)
			}
			want = with(upd, 2)
			t.wantSame("Get after Update with fields at their bounds", t.get(r.ID), want)
			reason := string(binaryOfLen(store.MaxReasonLen))
			if err := t.s.Revoke(t.ctx, r.ID, reason, t.now.Add(time.Second)); err != nil {
				t.Fatalf("Revoke with a reason of MaxReasonLen bytes: %v", err)
			}
			if got, err := t.s.Get(t.ctx, r.ID); err == nil {
				want.Version, want.RevokedAt, want.RevokeReason = 3, t.now.Add(time.Second), reason
				t.wantSame("Get after Revoke with a reason of MaxReasonLen bytes", got, want)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			b := t.record(sub, t.now)
			b.ID = t.id(sub)
			t.create(b)
			ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, reason, t.now.Add(2*time.Second))
			if err != nil || len(ids) != 1 || ids[0] != b.ID {
				t.Fatalf("RevokeSubject with a reason of MaxReasonLen bytes: %d IDs, error %v; want the one live session", len(ids), err)
			}
			if got, err := t.s.Get(t.ctx, b.ID); err == nil && got.RevokeReason != reason {
				t.Errorf("RevokeSubject did not keep its %d-byte reason byte for byte", len(reason))
			}
		},
	},
	{
		name:   "Times/Nanoseconds",
		clause: "Stores keep every time to the nanosecond, exactly as given (a store that keeps microseconds, as SQL TIMESTAMP(6) columns do, is not conforming). Evicted records get RevokedAt = rec.CreatedAt.",
		run: func(t *T) {
			sub := t.subject("ns")
			ns := func(d time.Duration, n int) time.Time { return t.now.Add(d + time.Duration(n)) }
			r := t.record(sub, ns(0, 1))
			r.AuthTime = ns(-time.Second, 2)
			r.LastSeenAt = ns(0, 3)
			r.IdleExpiresAt = ns(30*time.Minute, 4)
			r.ExpiresAt = ns(24*time.Hour, 5)
			r.Refresh.RotatedAt = ns(-time.Minute, 6)
			t.create(r)
			want := with(r, 1)
			t.wantSame("Get of a record whose times have nanoseconds", t.get(r.ID), want)
			live := func(what string, at time.Time, wantLive bool) {
				t.Helper()
				got := t.listIDs(sub, at)
				if listed := len(got) == 1 && got[0] == r.ID; listed != wantLive {
					t.Errorf("List %s: listed=%v, want %v (deadlines compare to the nanosecond)", what, listed, wantLive)
				}
			}
			live("1ns before the idle deadline", r.IdleExpiresAt.Add(-1), true)
			live("at the idle deadline", r.IdleExpiresAt, false)

			upd := want.Clone()
			upd.LastSeenAt, upd.IdleExpiresAt = ns(time.Minute, 7), ns(31*time.Minute, 8)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			want = with(upd, 2)
			t.wantSame("Get after an Update with nanosecond times", t.get(r.ID), want)

			next := store.Refresh{Key: r.Refresh.Key, Current: store.Hash{0xa}, Previous: r.Refresh.Current, RotatedAt: ns(2*time.Minute, 9), Generation: 1}
			rot := store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: ns(2*time.Minute, 10), IdleExpiresAt: ns(32*time.Minute, 11)}
			got, err := t.s.RotateRefresh(t.ctx, rot)
			if err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			want = with(want, 3)
			want.Refresh, want.LastSeenAt, want.IdleExpiresAt = next, rot.LastSeenAt, rot.IdleExpiresAt
			t.wantSame("record returned by a RotateRefresh with nanosecond times", got, want)
			t.wantSame("Get after a RotateRefresh with nanosecond times", t.get(r.ID), want)
			live("1ns before the rotated idle deadline", rot.IdleExpiresAt.Add(-1), true)
			live("at the rotated idle deadline", rot.IdleExpiresAt, false)

			// Eviction records the new record's CreatedAt, to the nanosecond.
			n := t.record(sub, ns(3*time.Minute, 12))
			n.LastSeenAt = n.CreatedAt
			ev, err := t.s.Create(t.ctx, n, 1)
			if err != nil || len(ev) != 1 || ev[0] != r.ID {
				t.Fatalf("Create with max 1: evicted %d, error %v; want the older session", len(ev), err)
			}
			if got, err := t.s.Get(t.ctx, r.ID); err == nil {
				if !got.RevokedAt.Equal(n.CreatedAt) {
					t.Errorf("an evicted record has RevokedAt %v, want the evicting record's CreatedAt %v", got.RevokedAt, n.CreatedAt)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			at := ns(3*time.Minute+time.Second, 13)
			if err := t.s.Revoke(t.ctx, n.ID, store.ReasonLogout, at); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if got, err := t.s.Get(t.ctx, n.ID); err == nil && !got.RevokedAt.Equal(at) {
				t.Errorf("Revoke recorded RevokedAt %v, want %v", got.RevokedAt, at)
			}
			m := t.record(sub, ns(3*time.Minute, 14))
			t.create(m)
			at = ns(3*time.Minute+2*time.Second, 15)
			if _, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, at); err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if got, err := t.s.Get(t.ctx, m.ID); err == nil && !got.RevokedAt.Equal(at) {
				t.Errorf("RevokeSubject recorded RevokedAt %v, want %v", got.RevokedAt, at)
			}

			if sw, ok := t.s.(store.Sweeper); ok {
				d := t.record(sub, t.now)
				d.IdleExpiresAt = ns(10*time.Minute, 16)
				t.create(d)
				if _, err := sw.Sweep(t.ctx, d.IdleExpiresAt.Add(-1)); err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				t.get(d.ID)
				if _, err := sw.Sweep(t.ctx, d.IdleExpiresAt); err != nil {
					t.Fatalf("Sweep: %v", err)
				}
				if _, err := t.s.Get(t.ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Get of a record swept exactly at its nanosecond deadline: %v, want ErrNotFound", err)
				}
			}
		},
	},
	{
		name:   "Create/MaxEvictionDeadNewRecord",
		clause: "\"Live\" is judged at rec.CreatedAt, for the new record too: one that is revoked or past its deadline at its own CreatedAt does not count toward max (and evicts nothing beyond max others). Evicted records get RevokedAt = rec.CreatedAt.",
		run: func(t *T) {
			sub := t.subject("deadnew")
			s1, s2 := t.record(sub, t.now), t.record(sub, t.now)
			s1.LastSeenAt, s2.LastSeenAt = t.now.Add(time.Second), t.now.Add(2*time.Second)
			t.create(s1)
			t.create(s2)
			expired := t.record(sub, t.now.Add(3*time.Second))
			expired.IdleExpiresAt = expired.CreatedAt
			if ev, err := t.s.Create(t.ctx, expired, 2); err != nil || len(ev) != 0 {
				t.Errorf("Create of a record already past its deadline, max 2, 2 live others: evicted %d, error %v; want none (it does not count)", len(ev), err)
			}
			revoked := t.record(sub, t.now.Add(4*time.Second))
			revoked.RevokedAt, revoked.RevokeReason = revoked.CreatedAt, store.ReasonReplaced
			if ev, err := t.s.Create(t.ctx, revoked, 2); err != nil || len(ev) != 0 {
				t.Errorf("Create of a revoked record, max 2, 2 live others: evicted %d, error %v; want none (it does not count)", len(ev), err)
			}
			if ids := t.listIDs(sub, t.now.Add(5*time.Second)); !sameIDs(ids, []store.ID{s1.ID, s2.ID}) {
				t.Errorf("List after creating dead records returned %d sessions, want the 2 live ones", len(ids))
			}
			dead := t.record(sub, t.now.Add(5*time.Second))
			dead.IdleExpiresAt = dead.CreatedAt
			ev, err := t.s.Create(t.ctx, dead, 1)
			if err != nil || len(ev) != 1 || ev[0] != s1.ID {
				t.Errorf("Create of a dead record, max 1, 2 live others: evicted %d, error %v; want exactly the least recently seen other", len(ev), err)
			}
			if got, err := t.s.Get(t.ctx, s1.ID); err == nil {
				if !got.RevokedAt.Equal(dead.CreatedAt) || got.RevokeReason != store.ReasonEvicted {
					t.Errorf("an evicted record has RevokedAt %v reason %q, want the evicting record's CreatedAt %v and %q", got.RevokedAt, got.RevokeReason, dead.CreatedAt, store.ReasonEvicted)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			if ids := t.listIDs(sub, t.now.Add(5*time.Second)); len(ids) != 1 || ids[0] != s2.ID {
				t.Errorf("List after eviction returned %d sessions, want the one kept", len(ids))
			}
		},
	},
}

// id returns a fresh ID carrying subject's tag.
func (t *T) id(subject string) store.ID {
	t.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		t.T.Fatalf("storetest: NewID: %v", err)
	}
	return id
}

// otherTagID returns an ID whose tag is not subject's.
func otherTagID(t *T, subject string) store.ID {
	for {
		o := t.subject("other")
		if store.SubjectTag(o) != store.SubjectTag(subject) {
			return t.id(o)
		}
	}
}

// binaryOfLen returns n random bytes that include NUL and bytes that are
// not valid UTF-8.
func binaryOfLen(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0, 0xff, 0xc3})
	if n > 8 {
		copy(b[n-3:], []byte{0xe2, 0x28, 0})
	}
	return b
}
