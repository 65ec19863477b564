package latch_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
)

func forge(victim, donor string) string {
	id, _, err := token.Parse(token.Session, victim)
	if err != nil {
		panic(err)
	}
	_, secret, err := token.Parse(token.Session, donor)
	if err != nil {
		panic(err)
	}
	return token.Encode(token.Session, id, secret)
}

func forgeRefresh(victim string) string {
	id, secret, err := token.Parse(token.Refresh, victim)
	if err != nil {
		panic(err)
	}
	secret[0] ^= 1
	return token.Encode(token.Refresh, id, secret)
}

func TestRefreshRotates(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	e.clock.Advance(time.Minute)
	r1, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if r1.RefreshToken == is.RefreshToken || r1.AccessToken.IsZero() || r1.AccessToken == is.AccessToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	if !r1.AccessExpiresAt.Equal(e.clock.Now().Add(latch.DefaultAccessTokenTTL)) {
		t.Fatalf("access token expires %v", r1.AccessExpiresAt)
	}
	if !r1.Session.LastSeenAt().Equal(e.clock.Now()) {
		t.Fatal("refresh did not record activity")
	}
	e.clock.Advance(time.Minute)
	if _, err := e.m.Refresh(ctx, r1.RefreshToken.Reveal()); err != nil {
		t.Fatalf("successor refresh token: %v", err)
	}
	if e.rec.count(latch.EventRefreshed, "") != 2 {
		t.Fatal("refreshed events missing")
	}
}

func TestRefreshGraceYieldsIdenticalSuccessor(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	r1, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(latch.DefaultRefreshGrace)
	r2, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatalf("same parent within grace: %v", err)
	}
	if r2.RefreshToken != r1.RefreshToken || r2.AccessToken != r1.AccessToken || !r2.AccessExpiresAt.Equal(r1.AccessExpiresAt) {
		t.Fatal("same parent within grace gave a different successor pair")
	}
}

func TestConcurrentRefreshWithOneToken(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	const tabs = 20
	results := make([]*latch.Refreshed, tabs)
	errs := make([]error, tabs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e.m.Refresh(ctx, is.RefreshToken.Reveal())
		}()
	}
	close(start)
	wg.Wait()
	for i := range tabs {
		if errs[i] != nil {
			t.Fatalf("tab %d: %v", i, errs[i])
		}
		if results[i].RefreshToken != results[0].RefreshToken || results[i].AccessToken != results[0].AccessToken {
			t.Fatalf("tab %d got a different successor", i)
		}
	}
	if _, err := e.m.Refresh(ctx, results[0].RefreshToken.Reveal()); err != nil {
		t.Fatalf("the shared successor does not work: %v", err)
	}
}

func TestRefreshReuseAfterGraceRevokesSession(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	r1, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(latch.DefaultRefreshGrace + time.Second)
	_, err = e.m.Refresh(ctx, is.RefreshToken.Reveal()) // the thief's copy
	if !errors.Is(err, latch.ErrRefreshReuse) || !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("reuse after grace: %v", err)
	}
	// Every carrier of the session is dead now.
	if _, err := e.m.Refresh(ctx, r1.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("successor after reuse: %v", err)
	}
	if _, err := e.m.Validate(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("session token after reuse: %v", err)
	}
	if _, err := e.m.Get(ctx, is.Session.ID()); !errors.Is(err, latch.ErrNotFound) {
		t.Fatalf("session is still live after reuse: %v", err)
	}
	if e.rec.count(latch.EventRefreshReuse, "") != 1 || e.rec.count(latch.EventRevoked, store.ReasonReuse) != 1 {
		t.Fatal("reuse events missing")
	}
}

func TestRefreshAncestorReuseRevokes(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	tok := is.RefreshToken.Reveal()
	for range 3 {
		e.clock.Advance(time.Minute)
		r, err := e.m.Refresh(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		tok = r.RefreshToken.Reveal()
	}
	// The very first token is three generations old: even within a grace
	// window of its own rotation time it is theft.
	if _, err := e.m.Refresh(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
		t.Fatalf("ancestor reuse: %v", err)
	}
}

func TestRefreshRaceThenReuseBeyondGrace(t *testing.T) {
	// A thief rotates first; the legitimate client's copy within grace
	// yields the same successor, and whichever of them uses the successor
	// second, after grace, ends the session.
	e := newEnv(t)
	is := e.create(t, "alice")
	thief, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	legit, err := e.m.Refresh(ctx, is.RefreshToken.Reveal())
	if err != nil || legit.RefreshToken != thief.RefreshToken {
		t.Fatalf("legit within grace: %v", err)
	}
	if _, err := e.m.Refresh(ctx, thief.RefreshToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.m.Refresh(ctx, legit.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
		t.Fatalf("second use of a rotated token: %v", err)
	}
}

func TestForgedRefreshTokenChangesNothing(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	if _, err := e.m.Refresh(ctx, is.RefreshToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	// An attacker who knows the session ID (it is public) forges a token.
	if _, err := e.m.Refresh(ctx, forgeRefresh(is.RefreshToken.Reveal())); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("forged refresh token: %v", err)
	}
	if _, err := e.m.Validate(ctx, is.SessionToken.Reveal()); err != nil {
		t.Fatalf("a forged refresh token revoked the session: %v", err)
	}
}

func TestRefreshHonoursDeadlines(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.IdleTimeout = 5 * time.Minute; c.AbsoluteTimeout = 15 * time.Minute })
	is := e.create(t, "alice")
	tok := is.RefreshToken.Reveal()
	for range 2 {
		e.clock.Advance(4 * time.Minute) // refreshing is activity: keeps the idle deadline moving
		r, err := e.m.Refresh(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		tok = r.RefreshToken.Reveal()
		if r.AccessExpiresAt.After(is.Session.ExpiresAt()) {
			t.Fatal("access token outlives its session")
		}
	}
	e.clock.Advance(5 * time.Minute)
	if _, err := e.m.Refresh(ctx, tok); !errors.Is(err, latch.ErrIdleTimeout) {
		t.Fatalf("refresh after idle timeout: %v", err)
	}
}
