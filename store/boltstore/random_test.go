package boltstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

// TestRandomOperations runs a random mix of every operation under a fake
// clock, checking after each step that the indexes are consistent and that
// List agrees with a brute-force scan of all records.
func TestRandomOperations(t *testing.T) {
	s := newTestStore(t, &Options{NoSync: true, SweepBatch: 3})
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	subjects := []string{"a", "b", "c"}
	var ids []store.ID
	pick := func() store.ID {
		if len(ids) == 0 || rng.IntN(10) == 0 {
			return store.ID{1} // unknown
		}
		return ids[rng.IntN(len(ids))]
	}
	var ok [10]int
	for step := range 1000 {
		now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
		sub := subjects[rng.IntN(len(subjects))]
		var err error
		op := rng.IntN(10)
		switch op {
		case 0, 1:
			r := newRecord(t, sub, now)
			r.IdleExpiresAt = now.Add(time.Duration(1+rng.IntN(30)) * time.Minute)
			r.ExpiresAt = now.Add(time.Duration(1+rng.IntN(120)) * time.Minute)
			_, err = s.Create(ctx, r, rng.IntN(5))
			ids = append(ids, r.ID)
		case 2, 8: // touch
			var r *store.Record
			if r, err = s.Get(ctx, pick()); err == nil {
				c := r.Clone()
				c.LastSeenAt = now
				c.IdleExpiresAt = now.Add(time.Duration(rng.IntN(30)) * time.Minute)
				err = s.Update(ctx, c)
			}
		case 3, 9:
			var r *store.Record
			if r, err = s.Get(ctx, pick()); err == nil {
				_, err = s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current,
					Next: store.Refresh{Current: store.Hash{byte(step)}}, LastSeenAt: now, IdleExpiresAt: now.Add(10 * time.Minute)})
			}
		case 4:
			err = s.Revoke(ctx, pick(), store.ReasonLogout, now)
		case 5:
			_, err = s.RevokeSubject(ctx, sub, pick(), store.ReasonRevokeAll, now)
		case 6:
			_, err = s.Sweep(ctx, now)
		case 7:
			err = checkList(s, sub, now.Add(time.Duration(rng.IntN(60)-30)*time.Minute))
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			t.Fatalf("step %d: %v", step, err)
		}
		if err == nil {
			ok[op]++
		}
		if err := checkDB(s.db); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	t.Logf("successful operations by kind: %v", ok)
	for op, n := range ok {
		if n == 0 && op < 8 {
			t.Errorf("operation %d never succeeded: the mix does not exercise it", op)
		}
	}
}

// checkList compares List(subject, now) with the live records of subject
// among all stored records, in the contract's order.
func checkList(s *Store, subject string, now time.Time) error {
	got, err := s.List(context.Background(), subject, now)
	if err != nil {
		return err
	}
	var want []*store.Record
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			r := new(store.Record)
			if err := r.UnmarshalBinary(v); err != nil {
				return err
			}
			if r.Subject == subject && r.Live(now) {
				want = append(want, r)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(want, func(a, b *store.Record) int { return -leastRecentFirst(a, b) })
	id := func(r *store.Record) store.ID { return r.ID }
	if g, w := mapSlice(got, id), mapSlice(want, id); !slices.Equal(g, w) {
		return fmt.Errorf("List(%q) = %v, want %v", subject, g, w)
	}
	return nil
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}
