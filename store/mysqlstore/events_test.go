package mysqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faultnet"
	"github.com/latch-sessions/latch/store"
)

// eventSink keeps every event and the newest proof of life.
type eventSink struct {
	mu     sync.Mutex
	events []store.Event
	alive  time.Time
	wake   chan struct{}
}

func newEventSink() *eventSink { return &eventSink{wake: make(chan struct{}, 1)} }

func (k *eventSink) Events(evs []store.Event) {
	k.mu.Lock()
	k.events = append(k.events, evs...)
	k.mu.Unlock()
	k.signal()
}

func (k *eventSink) Alive(at time.Time) {
	k.mu.Lock()
	k.alive = at
	k.mu.Unlock()
	k.signal()
}

func (k *eventSink) signal() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// until waits up to d for done to hold of the events so far.
func (k *eventSink) until(d time.Duration, done func(evs []store.Event, alive time.Time) bool) []store.Event {
	deadline := time.After(d)
	for {
		k.mu.Lock()
		evs, alive := append([]store.Event(nil), k.events...), k.alive
		k.mu.Unlock()
		if done(evs, alive) {
			return evs
		}
		select {
		case <-k.wake:
		case <-deadline:
			return evs
		}
	}
}

func subscribe(t *testing.T, s *Store, since time.Time) (*eventSink, <-chan error) {
	t.Helper()
	sink := newEventSink()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { done <- s.Subscribe(ctx, since, sink) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if sink.until(10*time.Second, func(_ []store.Event, alive time.Time) bool { return !alive.IsZero() }); sink.lastAlive().IsZero() {
		t.Fatal("Subscribe never called Alive within 10 s")
	}
	return sink, done
}

func (k *eventSink) lastAlive() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.alive
}

// TestEventsNoneMissedUnderConcurrentRevocations: revocations committing
// concurrently on two stores (two replicas) reach a subscriber on a third,
// every one exactly once, in increasing seq order. A reader that resumes
// after the highest seq it saw would skip an event whose seq was drawn
// lower but committed later: the counter's lock is what rules that out.
func TestEventsNoneMissedUnderConcurrentRevocations(t *testing.T) {
	dsn := testDatabase(t)
	a, b, reader := openTestStoreAt(t, dsn, Options{}), openTestStoreAt(t, dsn, Options{}), openTestStoreAt(t, dsn, Options{})
	sink, _ := subscribe(t, reader, time.Now().Add(-time.Minute))
	const workers, each = 8, 15
	want := map[store.ID]bool{}
	var recs [workers][]*store.Record
	for w := range workers {
		for range each {
			r := newRecord(t, fmt.Sprintf("user-%d", w))
			if _, err := a.Create(t.Context(), r, 0); err != nil {
				t.Fatal(err)
			}
			recs[w] = append(recs[w], r)
			want[r.ID] = true
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := []*Store{a, b}[w%2]
			for _, r := range recs[w] {
				if err := s.Revoke(t.Context(), r.ID, store.ReasonLogout, time.Now()); err != nil {
					t.Errorf("Revoke: %v", err)
				}
			}
		})
	}
	wg.Wait()
	got := sink.until(30*time.Second, func(evs []store.Event, _ time.Time) bool { return len(evs) >= len(want) })
	seen := map[store.ID]bool{}
	var last int64
	for _, e := range got {
		var seq int64
		fmt.Sscan(e.ID, &seq)
		if seq <= last {
			t.Errorf("event %s after %d: not in increasing order", e.ID, last)
		}
		last = seq
		if e.Type != store.EventSessionRevoked || !want[e.SessionID] || seen[e.SessionID] {
			t.Errorf("unexpected or repeated event %+v", e)
		}
		seen[e.SessionID] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("subscriber got %d of %d revocations", len(seen), len(want))
	}
}

// TestSweepTrimsEventsBeyondRetention: Sweep deletes events older than the
// retention beyond the newest eventKeepCount, keeps the rest, and a
// subscriber replaying from before them starts at the oldest kept.
func TestSweepTrimsEventsBeyondRetention(t *testing.T) {
	s := openTestStore(t, Options{})
	now := time.Now()
	old := store.UnixNano(now.Add(-store.DefaultEventRetention - time.Minute))
	const extra = 5
	// eventKeepCount+extra old events, numbered as appendEvents would.
	if _, err := s.DB().ExecContext(t.Context(), `INSERT INTO latch_events (seq, at, type, subject, reason)
		WITH d (n) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
			UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9),
		n (i) AS (SELECT 1 + a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n FROM d a, d b, d c, d e, d f)
		SELECT i, ?, 'subject.revoked', 'old', 'admin' FROM n WHERE i <= ?`, old, eventKeepCount+extra); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(), `UPDATE latch_event_seq SET seq = ?`, eventKeepCount+extra); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(t.Context(), store.Event{Type: store.EventKeysChanged, KeyID: "k1", Reason: "rotated", At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	var n, low int64
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*), MIN(seq) FROM latch_events`).Scan(&n, &low); err != nil {
		t.Fatal(err)
	}
	// The newest 10,000 stay (seq 7 to 10,006, the last the fresh event);
	// seq 1 to 6 are beyond them and older than the retention.
	if n != eventKeepCount || low != extra+2 {
		t.Fatalf("after Sweep: %d events from seq %d; want %d from %d", n, low, eventKeepCount, extra+2)
	}
	sink, _ := subscribe(t, s, now.Add(-time.Hour))
	got := sink.until(30*time.Second, func(evs []store.Event, _ time.Time) bool { return len(evs) >= eventKeepCount })
	if len(got) != eventKeepCount || got[0].ID != fmt.Sprint(extra+2) || got[len(got)-1].KeyID != "k1" {
		t.Fatalf("replay: %d events, first %+v; want %d from seq %d ending with keys.changed", len(got), got[0], eventKeepCount, extra+2)
	}
}

// TestSubscribeStalledServerUnavailable: when the server stops answering,
// Alive stops (no proof newer than the stall) and Subscribe ends with
// ErrUnavailable, for the caller to resubscribe.
func TestSubscribeStalledServerUnavailable(t *testing.T) {
	dsn := testDatabase(t)
	openTestStoreAt(t, dsn, Options{}) // migrates
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faultnet.NewProxy(t, cfg.Addr)
	cfg.Addr = p.Addr()
	ps := openTestStoreAt(t, cfg.FormatDSN(), Options{OpTimeout: time.Second, SkipMigrations: true})
	sink, done := subscribe(t, ps, time.Now())
	stalled := time.Now()
	p.Stall()
	defer p.Resume()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Subscribe on a stalled server returned %v, want ErrUnavailable", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Subscribe did not end within 60 s of the stall")
	}
	if alive := sink.lastAlive(); alive.IsZero() || alive.After(stalled) {
		t.Fatalf("last proof of life %v; want one sent before the stall at %v", alive, stalled)
	}
}
