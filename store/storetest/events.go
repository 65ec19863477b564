package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/latch-sessions/latch/store"
)

// eventTests check store.EventLog, for stores that implement it.
var eventTests = []test{
	{
		name:   "EventLog/EveryRevocationPublished",
		clause: "A store that implements EventLog appends, in the same atomic step as the write that causes them: session.revoked (and session.refresh_reuse for reason refresh-reuse) on Revoke of a live record; one subject.revoked on RevokeSubject; session.revoked with reason evicted per evicted ID on Create; session.renewed on an Update that changes VerifierHash. Events no store write carries are appended with Publish. Subscribe delivers them in commit order and calls Alive while the link works.",
		run: func(t *T) {
			log, ok := t.s.(store.EventLog)
			if !ok {
				t.Skip("store does not implement store.EventLog")
			}
			sink := newCollectSink()
			ctx, cancel := context.WithCancel(t.ctx)
			done := make(chan error, 1)
			go func() { done <- log.Subscribe(ctx, t.now, sink) }()
			defer func() {
				cancel()
				if err := <-done; err != context.Canceled {
					t.Errorf("Subscribe after its context was cancelled returned %v, want context.Canceled", err)
				}
			}()
			if !sink.waitAlive(10 * time.Second) {
				t.Fatalf("Subscribe never called Alive within 10 s")
			}

			subj := t.subject("events")
			a, b, c := t.record(subj, t.now), t.record(subj, t.now), t.record(subj, t.now.Add(time.Millisecond))
			t.create(a)
			t.create(b)
			t.create(c)
			if err := t.s.Revoke(t.ctx, a.ID, store.ReasonLogout, t.now); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if err := t.s.Revoke(t.ctx, a.ID, store.ReasonAdmin, t.now); err != nil { // no event: already revoked
				t.Fatalf("Revoke again: %v", err)
			}
			if err := t.s.Revoke(t.ctx, b.ID, store.ReasonReuse, t.now); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			cc := c.Clone()
			cc.Version = 1
			cc.LastSeenAt = t.now.Add(time.Second)
			if err := t.s.Update(t.ctx, cc); err != nil { // a touch: no event
				t.Fatalf("Update: %v", err)
			}
			cc.Version = 2
			rand.Read(cc.VerifierHash[:])
			if err := t.s.Update(t.ctx, cc); err != nil { // a renewal
				t.Fatalf("Update: %v", err)
			}
			d := t.record(subj, t.now.Add(2*time.Second))
			evicted, err := t.s.Create(t.ctx, d, 1)
			if err != nil || len(evicted) != 1 || evicted[0] != c.ID {
				t.Fatalf("Create with max 1 evicted %v, %v; want [c]", evicted, err)
			}
			if _, err := t.s.RevokeSubject(t.ctx, subj, d.ID, store.ReasonRevokeAll, t.now.Add(3*time.Second)); err != nil {
				t.Fatalf("RevokeSubject: %v", err)
			}
			kid := "kid-" + rand.Text()[:8]
			if err := log.Publish(t.ctx, store.Event{Type: store.EventKeysChanged, KeyID: kid, Reason: "rotated", At: t.now}); err != nil {
				t.Fatalf("Publish: %v", err)
			}

			// The subject's events are one shard's, in commit order; on a
			// cluster, keys.changed may come from another shard, in any order.
			ours := func(e store.Event) bool { return e.Subject == subj } // not another test's, on a shared backend
			got := sink.until(10*time.Second, func(evs []store.Event) bool {
				return slices.ContainsFunc(evs, func(e store.Event) bool { return e.KeyID == kid }) &&
					len(slices.DeleteFunc(slices.Clone(evs), func(e store.Event) bool { return !ours(e) })) >= 6
			})
			got = slices.DeleteFunc(got, func(e store.Event) bool { return !ours(e) && e.KeyID != kid })
			slices.SortStableFunc(got, func(x, y store.Event) int { // keys.changed last
				return cmpBool(x.KeyID == kid, y.KeyID == kid)
			})
			var mine []string
			ids := map[string]bool{}
			for _, e := range got {
				if e.ID == "" || ids[e.ID] {
					t.Errorf("event %+v has an empty or repeated ID", e)
				}
				ids[e.ID] = true
				name := map[store.ID]string{a.ID: "a", b.ID: "b", c.ID: "c", d.ID: "d"}
				mine = append(mine, fmt.Sprintf("%s %s %s %s", e.Type, name[e.SessionID], name[e.Except], e.Reason))
			}
			want := []string{
				"session.revoked a  logout",
				"session.revoked b  refresh-reuse",
				"session.refresh_reuse b  refresh-reuse",
				"session.renewed c  ",
				"session.revoked c  evicted",
				"subject.revoked  d revoke-all",
				"keys.changed   rotated",
			}
			if !slices.Equal(mine, want) {
				t.Errorf("events:\n\t%q\nwant\n\t%q", mine, want)
			}
		},
	},
}

// collectSink is a store.EventSink that keeps everything.
type collectSink struct {
	mu     sync.Mutex
	events []store.Event
	alive  bool
	wake   chan struct{}
}

func newCollectSink() *collectSink { return &collectSink{wake: make(chan struct{}, 1)} }

func (c *collectSink) Events(evs []store.Event) {
	c.mu.Lock()
	c.events = append(c.events, evs...)
	c.mu.Unlock()
	c.signal()
}

func (c *collectSink) Alive(time.Time) {
	c.mu.Lock()
	c.alive = true
	c.mu.Unlock()
	c.signal()
}

func (c *collectSink) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *collectSink) waitAlive(d time.Duration) bool {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok := c.alive
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.wake:
		case <-deadline:
			return false
		}
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// until waits (at most d) until the events received satisfy done, and
// returns them.
func (c *collectSink) until(d time.Duration, done func([]store.Event) bool) []store.Event {
	deadline := time.After(d)
	for {
		c.mu.Lock()
		evs := slices.Clone(c.events)
		c.mu.Unlock()
		if done(evs) {
			return evs
		}
		select {
		case <-c.wake:
		case <-deadline:
			return evs
		}
	}
}
