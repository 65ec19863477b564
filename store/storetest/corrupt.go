package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Corrupter damages what a store keeps for one record behind the store's
// back, as a failing disk, a server's memory or a stray tool would: a
// store's own test implements it with a raw client of its backend (a
// Redis GET and SET of the value, a SQL UPDATE of one column, a bbolt Put)
// and passes it to [RunCorruption].
//
// A record's stored form is seen as a sequence of Size bytes (for a SQL
// row, say, its columns one after another); Flip XORs one of them with a
// mask, so flipping the same byte twice with the same mask restores it.
type Corrupter interface {
	Size(t *testing.T, s store.Store, id store.ID) int
	Flip(t *testing.T, s store.Store, id store.ID, i int, mask byte)
}

// corruptClause is the clause RunCorruption checks.
const corruptClause = "a stored record whose bytes were damaged behind the store's back is reported as " +
	"ErrUnavailable (and ErrCorrupt) by Get, and List fails the same way or leaves it out; " +
	"it is never read as a session, nor as another one, and other records read back unchanged"

// RunCorruption checks that s detects damage to stored records: for every
// byte of the stored form of a record written by Create, by RotateRefresh
// and by Revoke in turn, it flips one bit (a different one at each
// position) with c, requires the clause above, and flips it back.
//
// newStore's store is used for the whole run; it must read through to its
// backend (a client-side cache would hide the damage until invalidated:
// turn it off).
func RunCorruption(t *testing.T, newStore func(t *testing.T) store.Store, c Corrupter) {
	t.Helper()
	t.Run("DamageDetected", func(tt *testing.T) {
		s := newStore(tt)
		ct := &T{T: tt, clause: corruptClause, s: s, ctx: tt.Context(), now: time.Now().UTC().Truncate(time.Microsecond).Add(321)}
		testCorruption(ct, c)
	})
}

func testCorruption(t *T, c Corrupter) {
	subject := t.subject("corrupt")
	victim := t.record(subject, t.now)
	bystander := t.record(subject, t.now.Add(time.Millisecond))
	t.create(victim)
	t.create(bystander)
	wantBystander := t.get(bystander.ID)

	check := func(state string) {
		want := t.get(victim.ID)
		n := c.Size(t.T, t.s, victim.ID)
		if n == 0 {
			t.Fatalf("%s: the corrupter sees no stored bytes", state)
		}
		for i := range n {
			mask := byte(1) << (i % 8)
			c.Flip(t.T, t.s, victim.ID, i, mask)
			got, err := t.s.Get(t.ctx, victim.ID)
			if got != nil || !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("%s: byte %d of %d flipped (mask %#02x): Get = record %v, %v; want ErrUnavailable and ErrCorrupt",
					state, i, n, mask, got != nil, err)
			}
			if rs, err := t.s.List(t.ctx, subject, t.now.Add(time.Second)); err == nil {
				for _, r := range rs {
					if r.ID == victim.ID {
						t.Errorf("%s: byte %d flipped: List returned the damaged record", state, i)
					} else if r.ID == bystander.ID {
						t.wantSame(state+": the other record, listed beside a damaged one", r, wantBystander)
					}
				}
			} else if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s: byte %d flipped: List: %v, want ErrUnavailable or the record left out", state, i, err)
			}
			t.wantSame(state+": the other record", t.get(bystander.ID), wantBystander)
			c.Flip(t.T, t.s, victim.ID, i, mask)
			if t.Failed() {
				return
			}
		}
		t.wantSame(state+": the record with every byte restored", t.get(victim.ID), want)
	}

	check("as created")

	rot := store.Rotation{
		ID:     victim.ID,
		Expect: victim.Refresh.Current,
		Next: store.Refresh{
			Key: victim.Refresh.Key, Previous: victim.Refresh.Current,
			RotatedAt: t.now.Add(time.Second), Generation: 1,
		},
		LastSeenAt:    t.now.Add(time.Second),
		IdleExpiresAt: t.now.Add(time.Second + 30*time.Minute),
	}
	rot.Next.Current[0] = 7
	if _, err := t.s.RotateRefresh(t.ctx, rot); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	check("after RotateRefresh")

	if err := t.s.Revoke(t.ctx, victim.ID, store.ReasonAdmin, t.now.Add(2*time.Second)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	check("after Revoke")
}
