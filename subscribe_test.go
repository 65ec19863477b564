package latch_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store/boltstore"
)

// next waits for the subscription's next events (the test fails after a
// generous deadline; nothing here measures time).
func next(t *testing.T, sub *latch.Subscription, n int) []latch.StreamEvent {
	t.Helper()
	var got []latch.StreamEvent
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-sub.Ready():
			got = append(got, sub.Take()...)
		case <-deadline:
			t.Fatalf("got %d events, want %d: %+v", len(got), n, got)
		}
	}
	return got
}

func kinds(evs []latch.StreamEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type)+"/"+e.Reason)
	}
	return out
}

func TestSubscribeSeesEveryRevocationKind(t *testing.T) {
	for name, mut := range map[string]func(*latch.Config){
		"memstore": nil,
		"boltstore": func(c *latch.Config) {
			s, err := boltstore.Open(t.TempDir()+"/latch.db", nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			c.Store = s
		},
	} {
		t.Run(name, func(t *testing.T) {
			var muts []func(*latch.Config)
			if mut != nil {
				muts = append(muts, mut)
			}
			e := newEnv(t, append(muts, func(c *latch.Config) { c.MaxPerSubject = 2 })...)
			sub, err := e.m.Subscribe(ctx, latch.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if !sub.Live() {
				t.Error("an in-process store's subscription is not live")
			}
			a := e.create(t, "alice")
			if err := e.m.Revoke(ctx, a.Session.ID(), "logout"); err != nil {
				t.Fatal(err)
			}
			b := e.create(t, "alice")
			if _, err := e.m.Renew(ctx, b.Session.ID(), latch.Renewal{}); err != nil {
				t.Fatal(err)
			}
			e.create(t, "alice")
			e.create(t, "alice") // evicts one (all were seen at the same fake time)
			if _, err := e.m.RevokeSubject(ctx, "alice", ""); err != nil {
				t.Fatal(err)
			}
			c := e.create(t, "carol")
			r1, err := e.m.Refresh(ctx, c.RefreshToken.Reveal())
			if err != nil {
				t.Fatal(err)
			}
			_ = r1
			e.clock.Advance(time.Minute) // past the refresh grace
			if _, err := e.m.Refresh(ctx, c.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRefreshReuse) {
				t.Fatalf("reuse: %v", err)
			}
			got := next(t, sub, 6)
			want := []string{"session.revoked/logout", "session.renewed/", "session.revoked/evicted", "subject.revoked/revoke-all", "session.revoked/refresh-reuse", "session.refresh_reuse/refresh-reuse"}
			if !slices.Equal(kinds(got), want) {
				t.Fatalf("events = %v\nwant     %v", kinds(got), want)
			}
			if got[0].SessionID != a.Session.ID() || got[0].Subject != "alice" || got[1].SessionID != b.Session.ID() || got[2].SessionID == "" || got[2].SessionID == a.Session.ID() {
				t.Errorf("wrong sessions in %+v", got)
			}
			ids := map[string]bool{}
			for _, ev := range got {
				if ev.ID == "" || ids[ev.ID] {
					t.Errorf("event ID %q empty or repeated", ev.ID)
				}
				ids[ev.ID] = true
				for _, tok := range []string{a.SessionToken.Reveal(), b.RefreshToken.Reveal(), c.RefreshToken.Reveal(), r1.RefreshToken.Reveal()} {
					if strings.Contains(ev.ID+ev.Reason+ev.Subject+ev.SessionID, tok[4:]) {
						t.Errorf("event %+v contains a token", ev)
					}
				}
			}
		})
	}
}

func TestSubscribeResumeAndReset(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.EventRetentionCount = 3; c.EventRetention = time.Minute })
	sub, err := e.m.Subscribe(ctx, latch.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	revoke := func() {
		is := e.create(t, "alice")
		if err := e.m.Revoke(ctx, is.Session.ID(), "admin"); err != nil {
			t.Fatal(err)
		}
	}
	revoke()
	first := next(t, sub, 1)[0]
	revoke()
	revoke()
	missed := next(t, sub, 2)

	// A resume after first gets exactly what came after it.
	again, err := e.m.Subscribe(ctx, latch.SubscribeOptions{LastEventID: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	got := next(t, again, 2)
	again.Close()
	if got[0].ID != missed[0].ID || got[1].ID != missed[1].ID {
		t.Fatalf("resumed with %v, missed %v", got, missed)
	}

	// Unknown IDs reset.
	unk, err := e.m.Subscribe(ctx, latch.SubscribeOptions{LastEventID: "0-1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, unk, 1)[0]; r.Type != latch.EventReset || r.Reason != latch.ResetUnknownID || r.ID == "" {
		t.Fatalf("unknown ID: %+v, want a reset", r)
	}
	unk.Close()

	// Beyond the retention (older than a minute and three newer events): reset.
	e.clock.Advance(2 * time.Minute)
	for range 4 {
		revoke()
	}
	next(t, sub, 4)
	old, err := e.m.Subscribe(ctx, latch.SubscribeOptions{LastEventID: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if r := next(t, old, 1)[0]; r.Type != latch.EventReset {
		t.Fatalf("resume beyond the retention: %+v, want a reset", r)
	}
}

func TestSubscribeTypes(t *testing.T) {
	e := newEnv(t)
	if _, err := e.m.Subscribe(ctx, latch.SubscribeOptions{Types: []latch.EventType{"session.nope"}}); !errors.Is(err, latch.ErrUnknownEventType) {
		t.Fatalf("unknown type: %v", err)
	}
	sub, err := e.m.Subscribe(ctx, latch.SubscribeOptions{Types: []latch.EventType{latch.EventCreated, latch.EventSubjectRevoked}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	is := e.create(t, "alice")
	if err := e.m.Revoke(ctx, is.Session.ID(), "logout"); err != nil { // not asked for
		t.Fatal(err)
	}
	if _, err := e.m.RevokeSubject(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	got := next(t, sub, 2)
	if want := []string{"session.created/", "subject.revoked/revoke-all"}; !slices.Equal(kinds(got), want) {
		t.Fatalf("events = %v, want %v", kinds(got), want)
	}
}

func TestSubscribeWithoutEventLog(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.Store = failing{} })
	if _, err := e.m.Subscribe(ctx, latch.SubscribeOptions{}); !errors.Is(err, latch.ErrNoEvents) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Subscribe on a store without events: %v", err)
	}
}
