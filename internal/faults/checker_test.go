package faults

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

const testAPIKey = "faults-test-api-key-0123456789-abcdefghij"

// replicas serves the latch API from n in-process servers sharing shared;
// wrap, if not nil, wraps the store of the last one: the replica with a
// planted bug.
func replicas(t *testing.T, n int, shared *memstore.Store, wrap func(*memstore.Store) store.Store) []string {
	t.Helper()
	var urls []string
	for i := range n {
		var st store.Store = shared
		if wrap != nil && i == n-1 {
			st = wrap(shared)
		}
		srv, err := server.New(context.Background(), server.Options{
			Store: st, APIKey: testAPIKey, KEK: bytes.Repeat([]byte{7}, 32), Issuer: "https://latch.test",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		urls = append(urls, ts.URL)
	}
	return urls
}

// minExercised is how many sessions, revocations and rotations a checker
// test's load must have acknowledged before its history is judged. A
// planted bug shows only on some of them (a stale replica is caught only
// where the load happened to read a session through it both before and
// after its revocation), so one revocation is not enough to prove the
// checker catches it: under load, with one, it was missed.
const minExercised = 10

// run drives urls for d, reads everything back and checks the history.
func run(t *testing.T, urls []string, d time.Duration, o Options) *Report {
	t.Helper()
	h := &History{}
	l := NewLoad(urls, testAPIKey, h)
	exercised := func(r *Report) bool {
		return r.Sessions >= minExercised && r.Revocations >= minExercised && r.Rotations >= minExercised
	}
	// d of load is enough on a quiet machine; a loaded one (or -race) may
	// answer too few requests in it (45 in a second has been seen), so the
	// load runs on, d at a time, until it has exercised enough (at most
	// 60 d).
	for range 60 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		l.Run(ctx, 8)
		cancel()
		if exercised(Check(h, o)) {
			break
		}
	}
	l.Reread(context.Background())
	r := Check(h, o)
	t.Logf("%v", r)
	if !exercised(r) {
		t.Fatalf("the load exercised too little to check anything (want %d sessions, revocations and rotations): %v", minExercised, r)
	}
	return r
}

// The checker passes a healthy deployment: two replicas on one store.
func TestCheckerPassesHealthyReplicas(t *testing.T) {
	r := run(t, replicas(t, 2, memstore.New(), nil), time.Second, Options{})
	if !r.OK() {
		t.Fatalf("violations on a healthy deployment: %q", r.Violations)
	}
}

// staleStore hides revocations: once a record is revoked it serves the
// last unrevoked copy it read, as a cache that missed the invalidation
// does.
type staleStore struct {
	*memstore.Store
	mu   sync.Mutex
	seen map[store.ID]*store.Record
}

func (s *staleStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.Store.Get(ctx, id)
	if err != nil {
		return rec, err
	}
	if old, ok := s.seen[id]; ok && !rec.RevokedAt.IsZero() {
		return old, nil // hide the revocation
	}
	s.seen[id] = rec
	return rec, nil
}

func TestCheckerCatchesStaleReadsAfterRevoke(t *testing.T) {
	urls := replicas(t, 2, memstore.New(), func(m *memstore.Store) store.Store {
		return &staleStore{Store: m, seen: map[store.ID]*store.Record{}}
	})
	r := run(t, urls, time.Second, Options{Tolerance: 250 * time.Millisecond})
	if r.WronglyAccepted == 0 {
		t.Fatalf("a replica that never sees revocations passed the checker: %v", r)
	}
}

// dropStore acknowledges revocations and refresh rotations without storing
// them: the writes an acknowledgement promises are lost.
type dropStore struct{ *memstore.Store }

func (d dropStore) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	return nil
}

func (d dropStore) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	return nil, nil
}

func (d dropStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	rec, err := d.Store.Get(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	c := rec.Clone()
	c.Refresh = r.Next
	c.Version++
	return c, nil // acknowledged, never stored
}

func TestCheckerCatchesLostWrites(t *testing.T) {
	urls := replicas(t, 2, memstore.New(), func(m *memstore.Store) store.Store { return dropStore{m} })
	r := run(t, urls, time.Second, Options{})
	if r.WronglyAccepted == 0 || r.Lost+r.WrongErrors == 0 {
		t.Fatalf("dropped revocations and rotations passed the checker: %v", r)
	}
}

// crashStore panics on every tenth read: the server answers 500 internal,
// and only a 503 may be answered. (An unclassified error would not do: the
// manager fails closed on any store error, with 503.)
type crashStore struct {
	*memstore.Store
	mu sync.Mutex
	n  int
}

func (c *crashStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if n%10 == 0 {
		panic("planted: a store bug") // the server's recovery answers 500
	}
	return c.Store.Get(ctx, id)
}

func TestCheckerCatchesWrongErrors(t *testing.T) {
	urls := replicas(t, 2, memstore.New(), func(m *memstore.Store) store.Store { return &crashStore{Store: m} })
	r := run(t, urls, time.Second, Options{})
	if r.WrongErrors == 0 {
		t.Fatalf("500 answers passed the checker: %v", r)
	}
	t.Logf("%q", r.Violations)
}

// twoSuccessors records a refresh token answered with two different
// successors; the checker must flag it (the server never does this, so the
// history is planted directly).
func TestCheckerCatchesTwoSuccessors(t *testing.T) {
	h := &History{}
	now := time.Now()
	for _, next := range []string{"b", "c"} {
		h.Add(Op{Kind: Refresh, Session: "s", Token: "a", Next: next, Status: 200, Accepted: true, Start: now, End: now})
	}
	if r := Check(h, Options{}); r.TwoSuccessors != 1 {
		t.Fatalf("two successors of one refresh token: %v", r)
	}
}

func TestRecoveryIsMeasuredOnEveryReplica(t *testing.T) {
	h := &History{}
	t0 := time.Now()
	back := t0.Add(time.Second)
	h.Inject("planted", t0, back)
	h.Add(Op{Kind: VerifySession, Replica: 0, Status: 200, Accepted: true, Start: back.Add(100 * time.Millisecond), End: back.Add(200 * time.Millisecond)})
	h.Add(Op{Kind: VerifySession, Replica: 1, Status: 503, Code: "store_unavailable", Start: back, End: back.Add(time.Millisecond)})
	if r := Check(h, Options{}); r.Recovery[0] != -1 {
		t.Fatalf("replica 1 never succeeded after the fault, but recovery = %v", r.Recovery)
	}
	h.Add(Op{Kind: VerifySession, Replica: 1, Status: 200, Accepted: true, Start: back.Add(time.Second), End: back.Add(3 * time.Second)})
	if r := Check(h, Options{}); r.Recovery[0] != 3*time.Second {
		t.Fatalf("recovery = %v, want 3s (the slower replica)", r.Recovery)
	}
}

// A refusal right after a write through another replica is a stale cache
// within the bound (counted, not failed); past the bound, or without one,
// it is a wrong answer.
func TestStaleRefusalsWithinTheBound(t *testing.T) {
	now := time.Now()
	h := &History{}
	h.Add(Op{Kind: Refresh, Replica: 0, Session: "s", Token: "a", Next: "b", Status: 200, Accepted: true, Start: now, End: now.Add(time.Millisecond)})
	h.Add(Op{Kind: Refresh, Replica: 1, Session: "s", Token: "b", Expect: Live, Status: 401, Code: "invalid_token", Start: now.Add(2 * time.Millisecond), End: now.Add(3 * time.Millisecond)})
	if r := Check(h, Options{Tolerance: 250 * time.Millisecond}); r.StaleRefusals != 1 || !r.OK() {
		t.Fatalf("within the bound: %v %q", r, r.Violations)
	}
	if r := Check(h, Options{}); r.WrongErrors != 1 {
		t.Fatalf("without a bound: %v", r)
	}
}

// TestCheckerJudgesClockSteps plants histories with one replica's clock
// ahead: a refusal the step explains is counted as a safe failure; one it
// does not explain (a replica on the right clock, a step too small), a
// revoked session accepted by the stepped replica and a deadline later
// than any writer's clock allows are violations.
func TestCheckerJudgesClockSteps(t *testing.T) {
	t0 := time.Now()
	at := func(d time.Duration) (time.Time, time.Time) { return t0.Add(d), t0.Add(d + time.Millisecond) }
	op := func(kind Kind, replica int, d time.Duration, status int, code string) Op {
		s, e := at(d)
		o := Op{Kind: kind, Replica: replica, Session: "s", Subject: "u", Start: s, End: e, Status: status, Code: code, Accepted: status/100 == 2}
		if !o.Accepted && kind != Revoke {
			o.Expect = Live
		}
		return o
	}
	timeouts := Timeouts{Idle: time.Minute, Absolute: 24 * time.Hour, AccessTTL: time.Minute, Leeway: 30 * time.Second}
	for _, c := range []struct {
		name   string
		step   time.Duration // of replica 1, from t0 to t0+10s
		ops    []Op
		judged func(r *Report) bool
	}{
		{"early expiry on the stepped replica", 2 * time.Minute,
			[]Op{op(Create, 0, 0, 201, ""), op(VerifySession, 1, time.Second, 401, "expired")},
			func(r *Report) bool { return r.ClockRefusals == 1 && r.OK() }},
		{"early expiry of a session the stepped replica created as its clock stepped", 2 * time.Minute,
			[]Op{op(Create, 1, -time.Millisecond/2, 201, ""), op(VerifySession, 1, time.Second, 401, "expired")},
			func(r *Report) bool { return r.ClockRefusals == 1 && r.OK() }},
		{"expiry on a replica whose clock is right", 2 * time.Minute,
			[]Op{op(Create, 1, 0, 201, ""), op(VerifySession, 0, time.Second, 401, "expired")},
			func(r *Report) bool { return r.WrongErrors == 1 }},
		{"expiry the step is too small to explain", 20 * time.Second,
			[]Op{op(Create, 0, 0, 201, ""), op(VerifySession, 1, time.Second, 401, "expired")},
			func(r *Report) bool { return r.WrongErrors == 1 }},
		{"a renewal on the stepped replica finds the session gone", 2 * time.Minute,
			[]Op{op(Create, 0, 0, 201, ""), op(Renew, 1, time.Second, 404, "not_found")},
			func(r *Report) bool { return r.ClockRefusals == 1 && r.OK() }},
		{"a refusal with another code", 2 * time.Minute,
			[]Op{op(Create, 0, 0, 201, ""), op(VerifySession, 1, time.Second, 401, "invalid_token")},
			func(r *Report) bool { return r.WrongErrors == 1 }},
		{"its access token refused elsewhere as issued in the future", 2 * time.Minute,
			[]Op{op(Create, 1, time.Second, 201, ""), op(VerifyAccess, 0, 2*time.Second, 401, "invalid_token")},
			func(r *Report) bool { return r.ClockRefusals == 1 && r.OK() }},
		{"an access token of a right clock refused as from the future", 2 * time.Minute,
			[]Op{op(Create, 0, time.Second, 201, ""), op(VerifyAccess, 2, 2*time.Second, 401, "invalid_token")},
			func(r *Report) bool { return r.WrongErrors == 1 }},
		{"an access token expired on the stepped replica", 2 * time.Minute,
			[]Op{op(Create, 0, 0, 201, ""), op(Refresh, 0, time.Second, 200, ""), op(VerifyAccess, 1, 2*time.Second, 401, "expired")},
			func(r *Report) bool { return r.ClockRefusals == 1 && r.OK() }},
		{"a revoked session accepted by the stepped replica", 2 * time.Minute,
			[]Op{op(Create, 0, 0, 201, ""), op(Revoke, 0, time.Second, 204, ""), op(VerifySession, 1, 2*time.Second, 200, "")},
			func(r *Report) bool { return r.WronglyAccepted == 1 }},
		{"a deadline the stepped replica wrote, read back", 2 * time.Minute,
			[]Op{op(Create, 1, time.Second, 201, ""), withDeadline(op(Reread, 0, 20*time.Second, 200, ""), t0.Add(time.Second+3*time.Minute))},
			func(r *Report) bool { return r.OK() && r.MaxExtension > 119*time.Second }},
		{"a deadline later than any writer's clock allows", 2 * time.Minute,
			[]Op{op(Create, 0, time.Second, 201, ""), withDeadline(op(Reread, 0, 20*time.Second, 200, ""), t0.Add(time.Second+3*time.Minute))},
			func(r *Report) bool { return r.LateDeadlines == 1 }},
	} {
		h := &History{}
		h.StepClock(ClockStep{Replica: 1, Offset: c.step, From: t0, To: t0.Add(10 * time.Second)})
		for _, o := range c.ops {
			h.Add(o)
		}
		if r := Check(h, Options{Timeouts: timeouts}); !c.judged(r) {
			t.Errorf("%s: judged wrongly: %v %q", c.name, r, r.Violations)
		}
	}
}

func withDeadline(o Op, idle time.Time) Op {
	o.Final, o.IdleExpires, o.Expect = true, idle, Live
	return o
}
