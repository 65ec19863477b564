package latch_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
)

// boundJKT is the thumbprint a test session is bound to; the proofs are
// stand-ins (a ProofCheck accepting only that key), the verifier itself is
// tested in package dpop and end to end in internal/e2e.
const boundJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

func acceptKey(jkt string) latch.ProofCheck {
	return func(_ context.Context, want string) error {
		if jkt != want {
			return &dpop.Error{Reason: dpop.ReasonKey}
		}
		return nil
	}
}

// TestRefreshReuseNeedsProof: a spent refresh token of a DPoP-bound
// session, replayed without a proof by its key (a copied old token), is
// refused as a proof failure and leaves the session live; with a proof by
// the key it is reuse, and the session is revoked.
func TestRefreshReuseNeedsProof(t *testing.T) {
	e := newEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", JKT: boundJKT})
	if err != nil {
		t.Fatal(err)
	}
	old := is.RefreshToken.Reveal()
	rf, err := e.m.RefreshProof(ctx, old, acceptKey(boundJKT))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute) // past the refresh grace: old is spent
	for name, prove := range map[string]latch.ProofCheck{"no proof": nil, "another key's proof": acceptKey("another")} {
		if _, err := e.m.RefreshProof(ctx, old, prove); !errors.Is(err, dpop.ErrInvalidProof) {
			t.Fatalf("spent token with %s: %v, want a DPoP refusal", name, err)
		}
	}
	if n := e.rec.count(latch.EventRefreshReuse, ""); n != 0 {
		t.Fatalf("%d reuse events from unproven replays", n)
	}
	if _, err := e.m.Validate(ctx, is.SessionToken.Reveal()); err != nil {
		t.Fatalf("after unproven replays the session is %v, want live", err)
	}
	if _, err := e.m.RefreshProof(ctx, old, acceptKey(boundJKT)); !errors.Is(err, latch.ErrRefreshReuse) {
		t.Fatalf("spent token with the key's proof: %v, want ErrRefreshReuse", err)
	}
	if _, err := e.m.RefreshProof(ctx, rf.RefreshToken.Reveal(), acceptKey(boundJKT)); err == nil {
		t.Fatal("after a proven reuse the live refresh token still works")
	}
}

// TestValidateAccessProofChangesNothing: a bound token whose proof is
// refused records no activity (a copied token cannot keep the session
// alive or rewrite its client); the proof runs only for a live session.
func TestValidateAccessProofChangesNothing(t *testing.T) {
	e := newEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", JKT: boundJKT, Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	// claimsIssuer renders "at:sub|sid|jti|...": the jti carries the
	// session's family tag, which ValidateAccess compares.
	f := strings.Split(is.AccessToken.Reveal(), "|")
	c := accesstoken.Claims{Subject: "alice", SessionID: is.Session.ID(), ID: f[2], JKT: boundJKT}
	e.clock.Advance(5 * time.Minute) // past the touch interval
	refused := &dpop.Error{Reason: dpop.ReasonKey}
	thief := latch.Client{IP: "203.0.113.9", UserAgent: "thief"}
	if _, err := e.m.ValidateAccessProof(ctx, c, thief, latch.AuthRequirement{}, func(context.Context) error { return refused }); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("refused proof: %v", err)
	}
	s, err := e.m.Peek(ctx, is.SessionToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastSeenAt().Equal(is.Session.LastSeenAt()) || s.Version() != is.Session.Version() || s.IP() == thief.IP {
		t.Fatalf("a refused proof changed the session: last seen %v (was %v), version %d (was %d), ip %q",
			s.LastSeenAt(), is.Session.LastSeenAt(), s.Version(), is.Session.Version(), s.IP())
	}
	if e.rec.count(latch.EventValidationFailed, latch.FailDPoP) != 1 {
		t.Fatal("no validation_failed event for the refused proof")
	}
	// On a revoked session the proof is not even checked (its jti is kept).
	called := false
	if err := e.m.Revoke(ctx, is.Session.ID(), "logout"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ValidateAccessProof(ctx, c, thief, latch.AuthRequirement{}, func(context.Context) error { called = true; return nil }); !errors.Is(err, latch.ErrRevoked) || called {
		t.Fatalf("revoked session: %v, proof checked %v", err, called)
	}
}
