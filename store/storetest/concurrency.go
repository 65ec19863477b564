package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/store"
)

var versionTests = []test{
	{
		name:   "Version/EveryWrite",
		clause: "Every successful write of a record (Create, Update, RotateRefresh, Revoke, RevokeSubject) stores it with a version one higher than before; Create stores version 1.",
		run: func(t *T) {
			sub := t.subject("ver")
			r := t.record(sub, t.now)
			r.Version = 0
			t.create(r)
			want := func(op string, v uint64) {
				t.Helper()
				if got := t.get(r.ID).Version; got != v {
					t.Errorf("after %s: Version %d, want %d", op, got, v)
				}
			}
			want("Create (given Version 0)", 1)

			upd := t.get(r.ID).Clone()
			upd.LastSeenAt = t.now.Add(time.Minute)
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			want("Update", 2)

			next := store.Refresh{Key: r.Refresh.Key, Current: store.Hash{3}, Previous: r.Refresh.Current, RotatedAt: t.now.Add(2 * time.Minute), Generation: 1}
			if _, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: t.now.Add(2 * time.Minute), IdleExpiresAt: t.now.Add(32 * time.Minute)}); err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			want("RotateRefresh", 3)

			if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now.Add(3*time.Minute)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if got, err := t.s.Get(t.ctx, r.ID); err == nil {
				if got.Version != 4 {
					t.Errorf("after Revoke: Version %d, want 4", got.Version)
				}
				if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now.Add(4*time.Minute)); err != nil {
					t.Errorf("second Revoke: %v", err)
				}
				want("a second Revoke (which changes nothing)", 4)
			}

			// RevokeSubject and eviction are writes too.
			a := t.record(sub, t.now.Add(time.Second))
			a.Version = 99
			t.create(a)
			b := t.record(sub, t.now.Add(2*time.Second))
			if evicted, err := t.s.Create(t.ctx, b, 1); err != nil || len(evicted) != 1 || evicted[0] != a.ID {
				t.Fatalf("Create with max 1: evicted %d IDs, err %v; want the older session evicted", len(evicted), err)
			}
			if got, err := t.s.Get(t.ctx, a.ID); err == nil && got.Version != 2 {
				t.Errorf("after eviction: Version %d, want 2", got.Version)
			}
			if _, err := t.s.RevokeSubject(t.ctx, sub, store.ID{}, store.ReasonRevokeAll, t.now.Add(3*time.Second)); err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			if got, err := t.s.Get(t.ctx, b.ID); err == nil && got.Version != 2 {
				t.Errorf("after RevokeSubject: Version %d, want 2", got.Version)
			}
		},
	},
}

var concurrencyTests = []test{
	{
		name:   "Update/ConcurrentNoLostUpdate",
		clause: "Update is a compare-and-swap on the version, so two writers that read the same version never silently overwrite each other: one wins, the other gets ErrConflict and retries from a fresh read.",
		run: func(t *T) {
			const writers, each = 50, 4
			r := t.record(t.subject("cas50"), t.now)
			r.Data = counterData(0)
			t.create(r)

			var ok, conflicts atomic.Int64
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					<-start
					for done, tries := 0, 0; done < each; tries++ {
						if tries > 100_000 {
							t.Errorf("writer %d: no successful Update in %d tries", w, tries)
							return
						}
						cur, err := t.s.Get(t.ctx, r.ID)
						if err != nil {
							t.Errorf("writer %d: Get: %v", w, err)
							return
						}
						n, err := counter(cur.Data)
						if err != nil {
							t.Errorf("writer %d: stored Data is not the counter written: %v", w, err)
							return
						}
						runtime.Gosched() // widen the read-modify-write window
						next := cur.Clone()
						next.Data = counterData(n + 1)
						next.LastSeenAt = t.now.Add(time.Duration(n+1) * time.Millisecond)
						switch err := t.s.Update(t.ctx, next); {
						case err == nil:
							ok.Add(1)
							done++
						case errors.Is(err, store.ErrConflict):
							conflicts.Add(1)
						default:
							t.Errorf("writer %d: Update: %v", w, err)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			final := t.get(r.ID)
			n, err := counter(final.Data)
			if err != nil {
				t.Fatalf("final Data: %v", err)
			}
			if int64(n) != ok.Load() {
				t.Errorf("counter is %d after %d successful read-modify-CAS increments: %d updates were lost", n, ok.Load(), ok.Load()-int64(n))
			}
			if final.Version != uint64(ok.Load())+1 {
				t.Errorf("Version %d after Create and %d successful Updates, want %d", final.Version, ok.Load(), ok.Load()+1)
			}
			t.Logf("%d writers: %d updates, %d conflicts", writers, ok.Load(), conflicts.Load())
		},
	},
	{
		name:   "RotateRefresh/ConcurrentExactlyOneWins",
		clause: "RotateRefresh atomically replaces the refresh state ... if its Refresh.Current equals r.Expect. If the record's refresh state has moved on it returns the stored record together with ErrConflict, so the caller can tell a concurrent rotation from theft without another read.",
		run: func(t *T) {
			const racers = 20
			r := t.record(t.subject("rot20"), t.now)
			t.create(r)
			type result struct {
				rec *store.Record
				err error
			}
			results := make([]result, racers)
			rots := make([]store.Rotation, racers)
			for i := range rots {
				next := store.Refresh{Key: r.Refresh.Key, Previous: r.Refresh.Current, RotatedAt: t.now.Add(time.Duration(i+1) * time.Millisecond), Generation: 1}
				rand.Read(next.Current[:])
				rots[i] = store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next,
					LastSeenAt: next.RotatedAt, IdleExpiresAt: next.RotatedAt.Add(30 * time.Minute)}
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					rec, err := t.s.RotateRefresh(t.ctx, rots[i])
					results[i] = result{rec, err}
				})
			}
			close(start)
			wg.Wait()

			winner := -1
			for i, res := range results {
				if res.err == nil {
					if winner >= 0 {
						t.Errorf("racers %d and %d both rotated with the same Expect", winner, i)
					}
					winner = i
				}
			}
			if winner < 0 {
				t.Fatalf("none of %d racers rotated", racers)
			}
			want := with(r, 2)
			want.Refresh = rots[winner].Next
			want.LastSeenAt, want.IdleExpiresAt = rots[winner].LastSeenAt, rots[winner].IdleExpiresAt
			t.wantSame("record returned to the winner", results[winner].rec, want)
			for i, res := range results {
				if i == winner {
					continue
				}
				if !errors.Is(res.err, store.ErrConflict) {
					t.Errorf("racer %d lost: got error %v, want ErrConflict", i, res.err)
					continue
				}
				if res.rec == nil {
					t.Errorf("racer %d lost: no record returned with ErrConflict", i)
					continue
				}
				if res.rec.Refresh.Current != want.Refresh.Current {
					t.Errorf("racer %d lost: returned record holds refresh %s, want the winner's %s", i, short(res.rec.Refresh.Current), short(want.Refresh.Current))
				}
				t.wantSame(fmt.Sprintf("record returned to losing racer %d", i), res.rec, want)
			}
			t.wantSame("Get after the race", t.get(r.ID), want)
		},
	},
	{
		name:   "Revoke/RacingWrites",
		clause: "Revocation ... A revoked record is never live again: Update and RotateRefresh on it fail with ErrConflict. All methods are safe for concurrent use, and each is atomic with respect to the others.",
		run:    testRevokeRace,
	},
	{
		name:   "RevokeSubject/RacingCreate",
		clause: "RevokeSubject revokes every unrevoked session of subject except the one with ID except (the zero ID excepts none), atomically with respect to Create for the same subject, and returns the revoked IDs.",
		run:    testRevokeSubjectRace,
	},
	{
		name:   "Create/MaxConcurrent",
		clause: "If the subject then has more than max live sessions (max > 0), the least recently seen others are revoked with reason \"evicted\", in the same atomic step, and their IDs returned.",
		run:    testMaxConcurrent,
	},
}

// testRevokeSubjectRace races creators of one subject against a sequence of
// RevokeSubject calls. Operations are stamped with a logical clock at their
// start and end; the invariant is linearizability:
//
//   - a session whose Create returned before a RevokeSubject started is
//     revoked, by that call or an earlier one;
//   - a session is revoked by a call that did not end before its Create
//     started, and by the first call that saw it: no earlier call started
//     after its Create had returned;
//   - every revoked session appears in exactly the return value of the call
//     that revoked it, and unrevoked sessions in none;
//   - the excepted session and other subjects' sessions are untouched.
func testRevokeSubjectRace(t *T) {
	const creators, maxEach, step, rounds = 8, 500, 8, 5
	sub, other := t.subject("race"), t.subject("bystander")

	except := t.record(sub, t.now)
	t.create(except)
	var before []*store.Record
	for i := range 5 {
		r := t.record(sub, t.now.Add(time.Duration(i)*time.Millisecond))
		t.create(r)
		before = append(before, r)
	}
	var bystanders []*store.Record
	for i := range 3 {
		r := t.record(other, t.now.Add(time.Duration(i)*time.Millisecond))
		t.create(r)
		bystanders = append(bystanders, r)
	}

	var clock atomic.Int64
	type createOp struct {
		id         store.ID
		start, end int64
	}
	type revokeOp struct {
		at         time.Time
		ids        []store.ID
		start, end int64
	}
	var (
		mu      sync.Mutex
		created []createOp
		count   atomic.Int64
	)
	start, stop := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for c := range creators {
		wg.Go(func() {
			<-start
			// Create until the revoker is done, then a few more, so that
			// creates precede, overlap and follow every RevokeSubject.
			extra := 3
			for j := 0; j < maxEach && extra > 0; j++ {
				select {
				case <-stop:
					extra--
				default:
				}
				runtime.Gosched()
				r := t.record(sub, t.now.Add(time.Duration(c*maxEach+j)*time.Microsecond))
				st := clock.Add(1)
				_, err := t.s.Create(t.ctx, r, 0)
				en := clock.Add(1)
				if err != nil {
					t.Errorf("creator %d: Create: %v", c, err)
					return
				}
				mu.Lock()
				created = append(created, createOp{r.ID, st, en})
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	close(start)
	revokes := make([]revokeOp, rounds)
	for k := range revokes {
		// Spread the calls over the creators' run: wait for progress.
		waitFor(func() bool { return count.Load() >= int64(min(k*creators*step, creators*maxEach/2)) }, &wg)
		at := t.now.Add(time.Duration(k+1) * time.Second)
		st := clock.Add(1)
		ids, err := t.s.RevokeSubject(t.ctx, sub, except.ID, store.ReasonRevokeAll, at)
		en := clock.Add(1)
		if err != nil {
			t.Errorf("RevokeSubject #%d: %v", k, err)
			close(stop)
			wg.Wait()
			return
		}
		revokes[k] = revokeOp{at, ids, st, en}
	}
	close(stop)
	wg.Wait()

	// Who revoked what, according to the return values.
	by := map[store.ID]int{}
	for k, rv := range revokes {
		for _, id := range rv.ids {
			if prev, dup := by[id]; dup {
				t.Errorf("RevokeSubject calls #%d and #%d both returned the same ID", prev, k)
			}
			by[id] = k
		}
	}
	if _, ok := by[except.ID]; ok {
		t.Errorf("RevokeSubject returned the excepted ID")
	}
	for _, r := range before {
		if k, ok := by[r.ID]; !ok || k != 0 {
			t.Errorf("a session created before the first RevokeSubject was not returned by it")
		}
	}
	known := map[store.ID]bool{}
	for _, r := range before {
		known[r.ID] = true
	}
	var live []store.ID
	for _, c := range created {
		known[c.id] = true
		got := t.get(c.id)
		k, returned := by[c.id]
		if !got.Revoked() {
			if returned {
				t.Errorf("RevokeSubject #%d returned an ID it did not revoke", k)
			}
			for j, rv := range revokes {
				if rv.start > c.end {
					t.Errorf("a session whose Create returned before RevokeSubject #%d started is still live", j)
					break
				}
			}
			live = append(live, c.id)
			continue
		}
		if !returned {
			t.Errorf("a session was revoked but no RevokeSubject returned its ID")
			continue
		}
		if !got.RevokedAt.Equal(revokes[k].at) || got.RevokeReason != store.ReasonRevokeAll {
			t.Errorf("a session returned by RevokeSubject #%d is revoked with another time or reason (%q)", k, got.RevokeReason)
		}
		if revokes[k].end < c.start {
			t.Errorf("RevokeSubject #%d revoked a session whose Create started after it returned", k)
		}
		for j := range k {
			if revokes[j].start > c.end {
				t.Errorf("RevokeSubject #%d started after a Create returned but did not revoke it; #%d did", j, k)
				break
			}
		}
		if got.Version != 2 {
			t.Errorf("a session revoked once by RevokeSubject has Version %d, want 2", got.Version)
		}
	}
	for id := range by {
		if !known[id] {
			t.Errorf("RevokeSubject returned an ID that was never created for the subject")
		}
	}
	if got := t.get(except.ID); got.Revoked() || got.Version != 1 {
		t.Errorf("the excepted session was modified (revoked %v, version %d)", got.Revoked(), got.Version)
	}
	for _, r := range bystanders {
		t.wantSame("another subject's session after RevokeSubject", t.get(r.ID), with(r, 1))
	}

	// Quiescent: a last call revokes exactly the survivors.
	ids, err := t.s.RevokeSubject(t.ctx, sub, except.ID, store.ReasonRevokeAll, t.now.Add(time.Minute))
	if err != nil {
		t.Fatalf("final RevokeSubject: %v", err)
	}
	if !sameIDs(ids, live) {
		t.Errorf("final RevokeSubject returned %d IDs, want the %d sessions still live", len(ids), len(live))
	}
	if ids := t.listIDs(sub, t.now.Add(time.Minute)); len(ids) != 1 || ids[0] != except.ID {
		t.Errorf("List after revoking all but one returned %d records, want only the excepted one", len(ids))
	}
	t.Logf("%d creates, %d revoked while racing, %d live after", len(created), len(by)-len(before), len(live))
}

// testMaxConcurrent races creators of one subject with a limit, while an
// observer lists the subject: it never sees more than max live sessions, and
// every session created is either live at the end or was evicted once.
func testMaxConcurrent(t *T) {
	const creators, each, max = 20, 10, 5
	sub := t.subject("max")
	listAt := t.now.Add(time.Minute)

	var (
		mu      sync.Mutex
		created = map[store.ID]bool{}
		evicted = map[store.ID]bool{}
	)
	start, stop := make(chan struct{}), make(chan struct{})
	var observer sync.WaitGroup
	observer.Go(func() {
		<-start
		for {
			select {
			case <-stop:
				return
			default:
			}
			rs, err := t.s.List(t.ctx, sub, listAt)
			if err != nil {
				t.Errorf("List: %v", err)
				return
			}
			if len(rs) > max {
				t.Errorf("List saw %d live sessions with max %d", len(rs), max)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for c := range creators {
		wg.Go(func() {
			<-start
			for j := range each {
				r := t.record(sub, t.now.Add(time.Duration((j*creators+c)%97)*time.Millisecond))
				ev, err := t.s.Create(t.ctx, r, max)
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				mu.Lock()
				created[r.ID] = true
				for _, id := range ev {
					if id == r.ID {
						t.Errorf("Create evicted the session it created")
					}
					if evicted[id] {
						t.Errorf("two Creates returned the same evicted ID")
					}
					evicted[id] = true
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	observer.Wait()

	live := t.listIDs(sub, listAt)
	if len(live) != max {
		t.Errorf("after %d Creates with max %d, List returned %d sessions", len(created), max, len(live))
	}
	for _, id := range live {
		if evicted[id] {
			t.Errorf("a session returned as evicted is listed as live")
		}
	}
	if len(live)+len(evicted) != len(created) {
		t.Errorf("%d created, %d live + %d evicted: sessions were lost or evicted twice", len(created), len(live), len(evicted))
	}
	for id := range evicted {
		if !created[id] {
			t.Errorf("Create returned an evicted ID that was never created")
			continue
		}
		got, err := t.s.Get(t.ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !got.Revoked() || got.RevokeReason != store.ReasonEvicted || got.Version != 2 {
			t.Errorf("an evicted session has revoked=%v reason %q version %d, want revoked, %q, 2", got.Revoked(), got.RevokeReason, got.Version, store.ReasonEvicted)
		}
	}
}

func counterData(n int) []byte { return []byte(`{"n":` + strconv.Itoa(n) + `}`) }

func counter(data []byte) (int, error) {
	s := string(data)
	if len(s) < 6 || s[:5] != `{"n":` || s[len(s)-1] != '}' {
		return 0, fmt.Errorf("Data %q is not a counter", s)
	}
	return strconv.Atoi(s[5 : len(s)-1])
}

// testRevokeRace races touch-style Updates and refresh rotations of one
// record against a Revoke: the revocation must not be lost to a concurrent
// write (a read-modify-write Revoke would be), no write may succeed once
// Revoke has returned, and the version counts every successful write.
func testRevokeRace(t *T) {
	const updaters, rotators = 6, 4
	r := t.record(t.subject("revrace"), t.now)
	t.create(r)

	var clock, writes atomic.Int64
	var revokedEnd atomic.Int64
	revokedEnd.Store(1 << 62)
	start := make(chan struct{})
	var wg sync.WaitGroup
	writer := func(w int, write func(cur *store.Record) error) {
		<-start
		// Write until the record is seen revoked, for at most 100 tries
		// after Revoke returned (the final check reports a lost one).
		for after := 0; after < 100; {
			if revokedEnd.Load() < 1<<62 {
				after++
			}
			cur, err := t.s.Get(t.ctx, r.ID)
			if errors.Is(err, store.ErrNotFound) {
				return
			}
			if err != nil {
				t.Errorf("writer %d: Get: %v", w, err)
				return
			}
			if cur.Revoked() {
				return
			}
			st := clock.Add(1)
			switch err := write(cur); {
			case err == nil:
				writes.Add(1)
				if st > revokedEnd.Load() {
					t.Errorf("writer %d: a write that started after Revoke returned succeeded", w)
					return
				}
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			default:
				t.Errorf("writer %d: %v", w, err)
				return
			}
		}
	}
	for w := range updaters {
		wg.Go(func() {
			writer(w, func(cur *store.Record) error {
				c := cur.Clone()
				c.LastSeenAt = c.LastSeenAt.Add(time.Millisecond)
				c.IdleExpiresAt = c.LastSeenAt.Add(30 * time.Minute)
				return t.s.Update(t.ctx, c)
			})
		})
	}
	for w := range rotators {
		wg.Go(func() {
			writer(updaters+w, func(cur *store.Record) error {
				next := store.Refresh{Key: cur.Refresh.Key, Previous: cur.Refresh.Current, RotatedAt: t.now, Generation: cur.Refresh.Generation + 1}
				rand.Read(next.Current[:])
				_, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: cur.Refresh.Current, Next: next,
					LastSeenAt: cur.LastSeenAt.Add(time.Millisecond), IdleExpiresAt: cur.LastSeenAt.Add(31 * time.Minute)})
				return err
			})
		})
	}
	close(start)
	waitFor(func() bool { return writes.Load() >= 40 }, &wg)
	at := t.now.Add(time.Hour)
	err := t.s.Revoke(t.ctx, r.ID, store.ReasonReuse, at)
	revokedEnd.Store(clock.Add(1))
	wg.Wait()
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got, err := t.s.Get(t.ctx, r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.Revoked() || !got.RevokedAt.Equal(at) || got.RevokeReason != store.ReasonReuse {
		t.Errorf("after Revoke raced with writes the record is revoked=%v with reason %q: the revocation was lost", got.Revoked(), got.RevokeReason)
	}
	if want := uint64(writes.Load()) + 2; got.Version != want {
		t.Errorf("Version %d after Create, %d successful writes and Revoke; want %d", got.Version, writes.Load(), want)
	}
	if ids := t.listIDs(r.Subject, t.now); len(ids) != 0 {
		t.Errorf("List returned the revoked record")
	}
}

// waitFor polls until cond holds or every goroutine of wg has exited.
func waitFor(cond func() bool, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for !cond() {
		select {
		case <-done:
			return
		case <-time.After(50 * time.Microsecond):
		}
	}
}
