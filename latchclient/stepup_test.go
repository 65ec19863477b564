package latchclient_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/latch-sessions/latch/latchclient"
	"github.com/latch-sessions/latch/store/memstore"
)

// TestVerifyFor: step-up through latch serve — online (the server checks
// and does not touch) and from the cache (checked against the cached
// session) alike.
func TestVerifyFor(t *testing.T) {
	url := serve(t, memstore.New())
	signedIn := time.Now().Add(-10 * time.Minute)
	for _, cached := range []bool{false, true} {
		var c *latchclient.Client
		if cached {
			c = steadyClient(t, url) // what the cache answers is tested, not staleness
		} else {
			c = newClient(t, url, false)
		}
		cr, err := c.Create(ctx, latchclient.NewSession{Subject: "alice", AuthTime: &signedIn, ACR: "urn:latch:pwd", AMR: []string{"pwd"}})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Session.ACR != "urn:latch:pwd" || !slices.Equal(cr.Session.AMR, []string{"pwd"}) {
			t.Fatalf("created session: %+v", cr.Session)
		}
		tok := cr.SessionToken
		if cached {
			waitCached(t, c, tok)
		}
		for _, tc := range []struct {
			maxAge time.Duration
			acr    []string
			ok     bool
		}{
			{30 * time.Minute, nil, true},
			{5 * time.Minute, nil, false},
			{0, []string{"urn:latch:pwd", "urn:latch:mfa"}, true},
			{0, []string{"urn:latch:mfa"}, false},
			{30 * time.Minute, []string{"urn:latch:mfa"}, false},
		} {
			v, err := c.VerifyFor(ctx, tok, tc.maxAge, tc.acr...)
			switch {
			case tc.ok && err != nil:
				t.Errorf("cached=%v VerifyFor(%v, %q): %v", cached, tc.maxAge, tc.acr, err)
			case tc.ok && cached && !v.Cached:
				t.Errorf("cached=%v VerifyFor(%v, %q) did not answer from the cache", cached, tc.maxAge, tc.acr)
			case !tc.ok && !errors.Is(err, latchclient.ErrInsufficientAuth):
				t.Errorf("cached=%v VerifyFor(%v, %q): %v, want ErrInsufficientAuth", cached, tc.maxAge, tc.acr, err)
			case !tc.ok && errors.Is(err, latchclient.ErrRevoked):
				t.Errorf("an insufficient authentication also matches ErrRevoked")
			}
		}
	}
}
