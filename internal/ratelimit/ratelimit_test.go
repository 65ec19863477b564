package ratelimit

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBurstThenRate(t *testing.T) {
	l := New(2, 5, 0)
	a := netip.MustParseAddr("192.0.2.1")
	for i := range 5 {
		if ok, _ := l.Allow(a, t0); !ok {
			t.Fatalf("request %d of a burst of 5 refused", i+1)
		}
	}
	ok, retry := l.Allow(a, t0)
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("6th request: ok=%v retry=%v, want refused with 500ms (2/s)", ok, retry)
	}
	// Refused requests cost nothing: a flood does not push recovery back.
	for range 100 {
		l.Allow(a, t0)
	}
	if ok, _ := l.Allow(a, t0.Add(500*time.Millisecond)); !ok {
		t.Error("refused after the refill time, although refused requests should be free")
	}
}

func TestClientsAreIndependent(t *testing.T) {
	l := New(1, 3, 0)
	flood := netip.MustParseAddr("198.51.100.7")
	for range 1000 {
		l.Allow(flood, t0)
	}
	if ok, _ := l.Allow(flood, t0); ok {
		t.Fatal("the flooding client is not limited")
	}
	for _, s := range []string{"198.51.100.8", "203.0.113.1", "2001:db8:1::1", "::ffff:198.51.100.9"} {
		if ok, _ := l.Allow(netip.MustParseAddr(s), t0); !ok {
			t.Errorf("%s is limited by another client's flood", s)
		}
	}
}

func TestIPv6GroupedBySlash64(t *testing.T) {
	l := New(1, 2, 0)
	for _, s := range []string{"2001:db8:a:b::1", "2001:db8:a:b::2"} {
		l.Allow(netip.MustParseAddr(s), t0)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:a:b:ffff::3"), t0); ok {
		t.Error("a third address of the same /64 got past a burst of 2")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:a:c::1"), t0); !ok {
		t.Error("another /64 is limited")
	}
	// A v4-mapped address is the v4 client.
	v4 := netip.MustParseAddr("192.0.2.9")
	l.Allow(v4, t0)
	l.Allow(v4, t0)
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:192.0.2.9"), t0); ok {
		t.Error("the v4-mapped form of a limited address is a new client")
	}
}

func TestBoundedMemory(t *testing.T) {
	const capacity = 640
	l := New(1, 1, capacity)
	for i := range 20_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(a, t0)
	}
	if n := l.Len(); n > capacity {
		t.Fatalf("remembers %d clients, capacity %d", n, capacity)
	}
	// A client seen just now is remembered (it is the most recent).
	last := netip.AddrFrom4([4]byte{10, 0, 78, 31}) // i = 19_999
	if ok, _ := l.Allow(last, t0); ok {
		t.Error("the most recent client was forgotten")
	}
}

func TestNilAllowsEverything(t *testing.T) {
	l := New(0, 10, 0)
	if l != nil {
		t.Fatal("New(0, …) is not the nil Limiter")
	}
	if ok, _ := l.Allow(netip.Addr{}, t0); !ok || l.Len() != 0 {
		t.Error("the nil Limiter refused a request")
	}
}

func TestConcurrent(t *testing.T) {
	l := New(1, 10, 128)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 50)})
				if ok, _ := l.Allow(a, t0); ok && i%50 == 0 {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if l.Len() > 128 {
		t.Errorf("Len %d over capacity", l.Len())
	}
	if allowed == 0 {
		t.Error("nothing was allowed")
	}
}
