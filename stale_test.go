package latch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store"
)

// staleStore is replica B's view of a shared store whose Get answers from a
// cache that has not yet heard of the other replica's latest writes, as the
// Redis store's client-side cache can for a few milliseconds: Get returns
// the copy frozen by freeze, GetFresh reads the shared store.
type staleStore struct {
	store.Store
	mu     sync.Mutex
	frozen map[store.ID]*store.Record
	fresh  int // GetFresh calls
}

func (s *staleStore) freeze(t *testing.T, id string) {
	t.Helper()
	sid, err := store.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Store.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen == nil {
		s.frozen = map[store.ID]*store.Record{}
	}
	s.frozen[sid] = rec
}

func (s *staleStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	s.mu.Lock()
	rec, ok := s.frozen[id]
	s.mu.Unlock()
	if ok {
		return rec, nil
	}
	return s.Store.Get(ctx, id)
}

func (s *staleStore) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	s.mu.Lock()
	s.fresh++
	s.mu.Unlock()
	return s.Store.Get(ctx, id)
}

// replicas returns the environment of replica A and a Manager for replica B
// on the same store seen through a stale cache.
func replicas(t *testing.T) (*env, *latch.Manager, *staleStore) {
	t.Helper()
	a := newEnv(t)
	b := &staleStore{Store: a.store}
	m, err := latch.New(latch.Config{Store: b, Now: a.clock.Now, Observer: a.rec, AccessTokens: claimsIssuer{}})
	if err != nil {
		t.Fatal(err)
	}
	return a, m, b
}

func TestRefreshOnStaleReplicaAfterRotation(t *testing.T) {
	a, mb, b := replicas(t)
	is := a.create(t, "alice")
	b.freeze(t, is.Session.ID())

	a.clock.Advance(time.Minute)
	r1, err := a.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	// B's copy still holds the parent as current: the successor is unknown
	// to it, and must be judged on the source.
	a.clock.Advance(time.Millisecond)
	r2, err := mb.Refresh(ctx, r1.RefreshToken.Reveal())
	if err != nil {
		t.Fatalf("successor refreshed on the stale replica: %v", err)
	}
	if r2.RefreshToken == r1.RefreshToken {
		t.Fatal("the stale replica did not rotate")
	}
	if b.fresh == 0 {
		t.Fatal("no read past the cache")
	}
}

func TestReuseOnStaleReplicaStillDetected(t *testing.T) {
	a, mb, b := replicas(t)
	for _, stale := range []string{"parent current", "parent previous"} {
		t.Run(stale, func(t *testing.T) {
			is := a.create(t, "alice")
			if stale == "parent current" {
				b.freeze(t, is.Session.ID()) // B's copy: Current = H(T0)
			}
			r1, err := a.m.Refresh(ctx, is.RefreshToken.Reveal())
			if err != nil {
				t.Fatal(err)
			}
			if stale == "parent previous" {
				b.freeze(t, is.Session.ID()) // B's copy: Previous = H(T0), within grace
			}
			if _, err := a.m.Refresh(ctx, r1.RefreshToken.Reveal()); err != nil {
				t.Fatal(err)
			}
			// T0 is two generations back: theft, wherever it is presented,
			// whatever B's copy says.
			if _, err := mb.Refresh(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
				t.Fatalf("reused token on the stale replica: %v, want refresh_reuse", err)
			}
			if _, err := a.m.Validate(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
				t.Fatalf("session after reuse: %v, want revoked", err)
			}
		})
	}
}

func TestStaleReplicaAfterRenewal(t *testing.T) {
	a, mb, b := replicas(t)
	is := a.create(t, "alice")
	if _, err := a.m.Refresh(ctx, is.RefreshToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	b.freeze(t, is.Session.ID()) // B's copy: the first family, Previous = H(T0)
	a.clock.Advance(time.Minute) // past the grace period
	re, err := a.m.Renew(ctx, is.Session.ID(), latch.Renewal{})
	if err != nil {
		t.Fatal(err)
	}

	// The new family's tokens work on B at once.
	if _, err := mb.Validate(ctx, re.SessionToken.Reveal()); err != nil {
		t.Fatalf("renewed session token on the stale replica: %v", err)
	}
	c := accesstoken.Claims{Subject: "alice", SessionID: is.Session.ID(), ID: jtiOf(t, re.AccessToken)}
	if _, err := mb.ValidateAccess(ctx, c, latch.Client{}); err != nil {
		t.Fatalf("renewed access token on the stale replica: %v", err)
	}

	// The old family's token is not part of the new family: invalid, not
	// theft. B's stale copy would call it a reused token and revoke.
	if _, err := mb.Refresh(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("old family's token on the stale replica: %v, want invalid_token", err)
	}
	if _, err := a.m.Validate(ctx, re.SessionToken.Reveal()); err != nil {
		t.Fatalf("a token from before the renewal revoked the session: %v", err)
	}
	if _, err := mb.Refresh(ctx, re.RefreshToken.Reveal()); err != nil {
		t.Fatalf("renewed refresh token on the stale replica: %v", err)
	}
	// The tokens the renewal ended stay refused at the source. (B's frozen
	// copy still accepts the old session token: a cache's staleness is
	// bounded by the store, not closed by the manager.)
	if _, err := a.m.Validate(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("pre-renewal session token: %v", err)
	}
}

// jtiOf extracts the jti claimsIssuer rendered into tok.
func jtiOf(t *testing.T, tok latch.Token) string {
	t.Helper()
	parts := strings.SplitN(strings.TrimPrefix(tok.Reveal(), "at:"), "|", 4)
	if len(parts) < 4 {
		t.Fatal("not an access token of claimsIssuer")
	}
	return parts[2]
}
