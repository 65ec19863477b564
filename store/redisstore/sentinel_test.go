package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// sentinelURL is the redis-sentinel:// URL of sen's master.
func sentinelURL(sen *testredis.Sentinel) string {
	return "redis-sentinel://" + sen.Addr() + "/" + testredis.SentinelMaster
}

// TestConformanceSentinel runs the conformance suite through a live
// Sentinel: the store finds the master by asking the Sentinel.
func TestConformanceSentinel(t *testing.T) {
	master := testredis.StartServer(t)
	sen := testredis.StartSentinel(t, master)
	url := sentinelURL(sen)
	storetest.Run(t, func(t *testing.T) store.Store { return openURL(t, url) })
}

// TestSentinelFailover kills (-9) the master a Sentinel monitors while
// the store is in use. Until the Sentinel has promoted the replica every
// operation either fails with ErrUnavailable or answers correctly (never
// ErrNotFound for a session that exists, never another record); the store
// then finds the new master by itself, and every write acknowledged
// before the kill (and replicated, which the test waits for) or after it
// is readable there.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a master, a replica and a Sentinel and waits for a failover")
	}
	master := testredis.StartServer(t)
	replica := testredis.StartReplica(t, master)
	sen := testredis.StartSentinel(t, master, replica)
	s := openURL(t, sentinelURL(sen), func(o *Options) { o.Timeout = opTimeout })
	ctx := context.Background() // no deadline: the store's own timeout bounds each call

	sub := "failover-" + rand.Text()[:6]
	now := time.Now()
	var before []*store.Record
	for i := range 20 {
		r := newRecord(t, sub, now.Add(time.Duration(i)*time.Millisecond))
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatalf("Create before the kill: %v", err)
		}
		before = append(before, r)
	}
	if err := s.SaveKeyring(ctx, []byte("keyring-v1"), 0); err != nil {
		t.Fatalf("SaveKeyring: %v", err)
	}
	// Revoke one, so a tombstone must survive the failover too.
	if err := s.Revoke(ctx, before[0].ID, store.ReasonLogout, now); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	time.Sleep(writeGuard) // let Get use the client-side cache
	for _, r := range before {
		if _, err := s.Get(ctx, r.ID); err != nil {
			t.Fatalf("Get before the kill: %v", err)
		}
	}

	// Replication is asynchronous: wait until the replica has everything
	// the master acknowledged, so the writes above must survive.
	off, err := master.ReplOffset()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := replica.ReplOffset()
		if err == nil && got >= off {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica at offset %d (%v), master at %d after 10s", got, err, off)
		}
		time.Sleep(10 * time.Millisecond)
	}

	master.Kill()
	killed := time.Now()

	// checkGet allows a correct answer or ErrUnavailable, nothing else.
	checkGet := func(r *store.Record, during bool) error {
		got, err := s.Get(ctx, r.ID)
		if err != nil {
			if during && errors.Is(err, store.ErrUnavailable) {
				return err
			}
			t.Fatalf("Get of %v (created before the kill), %v after it: %v", r.ID, time.Since(killed).Round(time.Millisecond), err)
		}
		if got.ID != r.ID || got.Subject != r.Subject || got.VerifierHash != r.VerifierHash {
			t.Fatalf("Get of %v returned another record (%v, %q)", r.ID, got.ID, got.Subject)
		}
		if wantRevoked := r.ID == before[0].ID; got.Revoked() != wantRevoked {
			t.Fatalf("Get of %v: revoked %v, want %v", r.ID, got.Revoked(), wantRevoked)
		}
		return nil
	}

	// Drive the store until a Create succeeds, which only the promoted
	// replica can acknowledge.
	var after []*store.Record
	unavailable, served := 0, 0
	for i := 0; ; i++ {
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("store did not recover within 30s of the kill (%d calls failed closed)", unavailable)
		}
		start := time.Now()
		if checkGet(before[i%len(before)], true) == nil {
			served++
		} else {
			unavailable++
		}
		r := newRecord(t, sub, time.Now())
		_, err := s.Create(ctx, r, 0)
		if d := time.Since(start); d > 2*failBound {
			t.Errorf("Get+Create during the failover took %v, want at most %v", d, 2*failBound)
		}
		if err == nil {
			after = append(after, r)
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Create during the failover: %v, want nil or ErrUnavailable", err)
		}
		unavailable++
		time.Sleep(20 * time.Millisecond)
	}
	recovered := time.Since(killed)
	t.Logf("recovered %v after the kill: %d calls failed closed with ErrUnavailable, %d Gets answered correctly meanwhile",
		recovered.Round(time.Millisecond), unavailable, served)
	if unavailable == 0 {
		t.Error("no call failed while there was no master")
	}
	// The Sentinel has promoted the replica (a Create succeeded, and the
	// replica is the only server left that could accept it).
	sen.WaitMaster(t, replica.Addr(), 5*time.Second)

	for _, r := range before {
		if err := checkGet(r, false); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		r := newRecord(t, sub, time.Now())
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatalf("Create after recovery: %v", err)
		}
		after = append(after, r)
	}
	for _, r := range after {
		if got, err := s.Get(ctx, r.ID); err != nil || got.ID != r.ID {
			t.Fatalf("Get of a session created after the kill: %v", err)
		}
	}
	live, err := s.List(ctx, sub, time.Now())
	if err != nil {
		t.Fatalf("List after recovery: %v", err)
	}
	if want := len(before) - 1 + len(after); len(live) != want {
		t.Errorf("List after recovery: %d live sessions, want %d", len(live), want)
	}
	blob, version, err := s.LoadKeyring(ctx)
	if err != nil || !bytes.Equal(blob, []byte("keyring-v1")) || version != 1 {
		t.Errorf("LoadKeyring after failover: %q v%d, %v; want keyring-v1 v1", blob, version, err)
	}
	// Scripts run on the new master (loaded there on first use).
	if err := s.Revoke(ctx, before[1].ID, store.ReasonLogout, time.Now()); err != nil {
		t.Fatalf("Revoke after recovery: %v", err)
	}
	if got, err := s.Get(ctx, before[1].ID); err != nil || !got.Revoked() {
		t.Fatalf("Get after Revoke on the new master: %v", err)
	}
}
