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

// run drives urls for d, reads everything back and checks the history.
func run(t *testing.T, urls []string, d time.Duration, o Options) *Report {
	t.Helper()
	h := &History{}
	l := NewLoad(urls, testAPIKey, h)
	// d of load is enough on a quiet machine; a loaded one (or -race) may
	// answer too few requests in it to revoke or rotate anything, so the
	// load runs on, d at a time, until it has (at most 20 d).
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		l.Run(ctx, 8)
		cancel()
		if r := Check(h, o); r.Sessions > 0 && r.Revocations > 0 && r.Rotations > 0 {
			break
		}
	}
	l.Reread(context.Background())
	r := Check(h, o)
	t.Logf("%v", r)
	if r.Sessions == 0 || r.Revocations == 0 || r.Rotations == 0 {
		t.Fatalf("the load exercised too little to check anything: %v", r)
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
