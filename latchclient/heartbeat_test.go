package latchclient

import (
	"testing"
	"time"
)

func TestHeartbeatAge(t *testing.T) {
	for _, tc := range []struct {
		line string
		age  time.Duration
		ok   bool
	}{
		{": hb 0", 0, true},
		{": hb 37", 37 * time.Millisecond, true},
		{": hb", 0, false}, // no age: proves nothing
		{": hb -5", 0, false},
		{": hb 1e3", 0, false},
		{": hb 9999999999", 0, false},
		{": keepalive", 0, false},
		{":hb 3", 0, false},
	} {
		age, ok := heartbeatAge(tc.line)
		if age != tc.age || ok != tc.ok {
			t.Errorf("heartbeatAge(%q) = %v, %v; want %v, %v", tc.line, age, ok, tc.age, tc.ok)
		}
	}
}

// The bound counts from the replica's last proof of its store link, not
// from the heartbeat's arrival: a heartbeat reporting a proof older than
// the bound leaves the cache untrusted, so a replica's own staleness does
// not add to the client's.
func TestCacheBoundCountsFromTheReplicasProof(t *testing.T) {
	const bound = 250 * time.Millisecond
	c := newCache(bound, 10, nil)
	if c.live(time.Now()) {
		t.Fatal("a cache that never heard a heartbeat is live")
	}
	c.proven(bound + 50*time.Millisecond)
	if c.live(time.Now()) {
		t.Fatal("live after a heartbeat whose proof is older than the bound")
	}
	c.proven(10 * time.Millisecond)
	now := time.Now()
	if !c.live(now) {
		t.Fatal("not live after a fresh heartbeat")
	}
	if c.live(now.Add(bound)) {
		t.Fatal("still live a whole bound after a proof that was already 10 ms old")
	}
	// An older heartbeat (reordered or a slower path) never moves the proof back.
	c.proven(200 * time.Millisecond)
	if !c.live(now.Add(bound - 20*time.Millisecond)) {
		t.Fatal("an older proof moved the newest one back")
	}
}
