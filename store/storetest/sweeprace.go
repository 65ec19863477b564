package storetest

import (
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/store"
)

var sweepRaceTests = []test{
	{
		name:   "Sweep/RacingWrites",
		clause: "Each method is atomic with respect to the others — Sweep included: a sweep racing Create (with eviction), RevokeSubject, RotateRefresh or Update neither fails because of them nor deletes a record whose deadline a write it raced has moved past its now, and it leaves the subject index exact. Sweep retries its backend's transient conflicts (deadlocks, lock timeouts) rather than failing.",
		run:    testSweepRace,
	},
}

// testSweepRace runs a sweeper in a loop against writers that touch the
// very rows it deletes: evicting Creates whose eviction revokes records
// that are due for the sweep, RevokeSubject calls revoking them, and
// Updates and RotateRefreshes moving their deadlines past the sweep's now.
// Every call must succeed or give its contract answer, and afterwards:
//
//   - every record still stored has a deadline after the sweep's now, and
//     none whose deadline a successful write moved past it is gone;
//   - Sweep's counts add up to the records that are gone;
//   - every evicted or RevokeSubject-returned ID was returned once, and is
//     revoked with that reason if still stored;
//   - List and RevokeSubject return exactly the stored, unrevoked records.
func testSweepRace(t *T) {
	sw := sweeper(t)
	const (
		pool      = 30  // records per subject created before the race
		creators  = 4   // each alternating between the two subjects
		creates   = 45  // per creator
		maxLive   = 3   // eviction limit on subject A
		writers   = 2   // updaters, and as many rotators
		maxWrites = 150 // per updater or rotator
	)
	sweepAt := t.now.Add(time.Hour)
	far := t.now.Add(3 * time.Hour)
	// A's Creates evict, B's sessions are revoked all at once, C's are
	// updated and rotated.
	subA, subB, subC := t.subject("swevict"), t.subject("swrevoke"), t.subject("swwrite")

	type track struct {
		rec      *store.Record
		due      bool        // created with a deadline at or before sweepAt
		extended atomic.Bool // a successful write moved its deadline to far
	}
	var (
		mu      sync.Mutex
		all     []*track
		byID    = map[store.ID]*track{}
		evicted = map[store.ID]int{}
		revoked = map[store.ID]int{}
		seq     atomic.Int64
	)
	// mk returns a record created now (so records due at sweepAt are live
	// to eviction and RevokeSubject, and the sweep and those race on the
	// same rows) that is due at sweepAt or lives past it.
	mk := func(sub string, due bool) *store.Record {
		r := t.record(sub, t.now.Add(time.Duration(seq.Add(1))*time.Microsecond))
		r.LastSeenAt = r.CreatedAt
		if due {
			r.IdleExpiresAt = t.now.Add(10*time.Minute + time.Duration(seq.Add(1)))
		} else {
			r.IdleExpiresAt = far
		}
		return r
	}
	var targets []store.ID // C's due records, newest last: what updaters and rotators write to
	add := func(r *store.Record, due bool) {
		mu.Lock()
		tr := &track{rec: r, due: due}
		all = append(all, tr)
		byID[r.ID] = tr
		if due && r.Subject == subC {
			targets = append(targets, r.ID)
		}
		mu.Unlock()
	}
	for _, sub := range []string{subA, subB, subC} {
		for i := range pool {
			r := mk(sub, i%8 != 0)
			t.create(r)
			add(r, i%8 != 0)
		}
	}

	var (
		creatorsWG, writersWG, sweeperWG sync.WaitGroup
		stop                             = make(chan struct{})
		swept                            atomic.Int64
		sweeps                           atomic.Int64
	)
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	sweeperWG.Go(func() {
		for !stopped() {
			n, err := sw.Sweep(t.ctx, sweepAt)
			swept.Add(int64(n))
			sweeps.Add(1)
			if err != nil {
				t.Errorf("Sweep racing writes: %v", err)
				return
			}
		}
	})
	for c := range creators {
		creatorsWG.Go(func() {
			for j := range creates {
				sub, max := subA, maxLive
				switch (c + j) % 3 {
				case 1:
					sub, max = subB, 0
				case 2:
					sub, max = subC, 0
				}
				due := j%3 != 0
				r := mk(sub, due)
				ev, err := t.s.Create(t.ctx, r, max)
				if err != nil {
					t.Errorf("Create racing Sweep: %v", err)
					return
				}
				add(r, due)
				mu.Lock()
				for _, id := range ev {
					evicted[id]++
				}
				mu.Unlock()
			}
		})
	}
	var revokers sync.WaitGroup
	revokers.Go(func() {
		for !stopped() {
			ids, err := t.s.RevokeSubject(t.ctx, subB, store.ID{}, store.ReasonRevokeAll, t.now.Add(5*time.Minute))
			if err != nil {
				t.Errorf("RevokeSubject racing Sweep: %v", err)
				return
			}
			mu.Lock()
			for _, id := range ids {
				revoked[id]++
			}
			mu.Unlock()
		}
	})
	write := func(w int, op func(cur *store.Record) error) {
		rng := mrand.New(mrand.NewPCG(uint64(w), 7))
		for range maxWrites {
			// A due record not yet swept nor extended: one the sweeper
			// may be about to delete.
			mu.Lock()
			n := len(targets)
			if n == 0 {
				mu.Unlock()
				runtime.Gosched()
				continue
			}
			k := rng.IntN(n)
			id := targets[k]
			mu.Unlock()
			drop := func() {
				mu.Lock()
				if i := slices.Index(targets, id); i >= 0 {
					targets[i] = targets[len(targets)-1]
					targets = targets[:len(targets)-1]
				}
				mu.Unlock()
			}
			cur, err := t.s.Get(t.ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				drop()
				continue
			}
			if err != nil {
				t.Errorf("Get racing Sweep: %v", err)
				return
			}
			if cur.Revoked() {
				continue
			}
			switch err := op(cur); {
			case err == nil:
				mu.Lock()
				byID[id].extended.Store(true)
				mu.Unlock()
				drop()
			case errors.Is(err, store.ErrNotFound):
				drop()
			case errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("a write racing Sweep: %v", err)
				return
			}
		}
	}
	for w := range writers {
		writersWG.Go(func() {
			write(w, func(cur *store.Record) error {
				c := cur.Clone()
				c.LastSeenAt = c.LastSeenAt.Add(time.Millisecond)
				c.IdleExpiresAt = far
				return t.s.Update(t.ctx, c)
			})
		})
		writersWG.Go(func() {
			write(writers+w, func(cur *store.Record) error {
				next := store.Refresh{Key: cur.Refresh.Key, Previous: cur.Refresh.Current, RotatedAt: t.now, Generation: cur.Refresh.Generation + 1}
				rand.Read(next.Current[:])
				_, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: cur.ID, Expect: cur.Refresh.Current, Next: next,
					LastSeenAt: cur.LastSeenAt.Add(time.Millisecond), IdleExpiresAt: far})
				return err
			})
		})
	}
	// Creators and writers do a fixed amount of work; the sweeper and the
	// revoker run until they are done, and for a few sweeps at least.
	creatorsWG.Wait()
	writersWG.Wait()
	waitFor(func() bool { return sweeps.Load() > 3 }, &sweeperWG)
	close(stop)
	sweeperWG.Wait()
	revokers.Wait()
	if t.Failed() {
		return
	}
	n, err := sw.Sweep(t.ctx, sweepAt)
	if err != nil {
		t.Fatalf("final Sweep: %v", err)
	}
	swept.Add(int64(n))

	gone := 0
	stored := map[string][]store.ID{}
	for _, tr := range all {
		got, err := t.s.Get(t.ctx, tr.rec.ID)
		if errors.Is(err, store.ErrNotFound) {
			gone++
			switch {
			case !tr.due:
				t.Errorf("Sweep deleted a record whose deadline was after its now")
			case tr.extended.Load():
				t.Errorf("Sweep deleted a record whose deadline a successful write it raced had moved past its now")
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !got.Deadline().After(sweepAt) {
			t.Errorf("a record due at the sweep's now survived the final Sweep")
		}
		if k := evicted[got.ID]; k > 0 && (!got.Revoked() || got.RevokeReason != store.ReasonEvicted) {
			t.Errorf("an evicted record is stored with revoked=%v reason %q", got.Revoked(), got.RevokeReason)
		}
		if k := revoked[got.ID]; k > 0 && (!got.Revoked() || got.RevokeReason != store.ReasonRevokeAll) {
			t.Errorf("a record RevokeSubject returned is stored with revoked=%v reason %q", got.Revoked(), got.RevokeReason)
		}
		if !got.Revoked() {
			stored[got.Subject] = append(stored[got.Subject], got.ID)
		}
	}
	for id, k := range evicted {
		if k > 1 {
			t.Errorf("an ID was returned as evicted by %d Creates", k)
		}
		if byID[id] == nil || byID[id].rec.Subject != subA {
			t.Errorf("Create returned an evicted ID that is not one of the subject's records")
		}
	}
	for _, k := range revoked {
		if k > 1 {
			t.Errorf("an ID was returned by %d RevokeSubject calls", k)
		}
	}
	if int(swept.Load()) != gone {
		t.Errorf("Sweep calls reported %d deletions, but %d records are gone", swept.Load(), gone)
	}
	for _, sub := range []string{subA, subB, subC} {
		if got := t.listIDs(sub, sweepAt); !sameIDs(got, stored[sub]) {
			t.Errorf("after the race, List returned %d sessions, want the %d stored unrevoked ones: the subject index is off", len(got), len(stored[sub]))
		}
		ids, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, sweepAt)
		if err != nil {
			t.Fatalf("RevokeSubject: %v", err)
		}
		if !sameIDs(ids, stored[sub]) {
			t.Errorf("after the race, RevokeSubject returned %d IDs, want the %d stored unrevoked ones", len(ids), len(stored[sub]))
		}
	}
	t.Logf("%d records, %d swept in %d sweeps, %d evicted, %d revoked by RevokeSubject", len(all), swept.Load(), sweeps.Load(), len(evicted), len(revoked))
}
