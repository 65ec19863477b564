// Package ratelimit limits requests per client address: one token bucket
// (golang.org/x/time/rate) per client, kept in a sharded table of bounded
// size.
//
// # Security model
//
//   - Clients are independent: a client that exhausts its bucket (a flood
//     of bad tokens, say) delays only itself. An IPv4 client is one
//     address; an IPv6 client is its /64, the smallest block a single
//     subscriber is normally given, so rotating through the addresses of
//     one's own /64 does not buy more requests.
//   - Memory is bounded: each shard keeps at most its share of Capacity
//     clients and forgets the least recently seen one to make room. An
//     attacker who cycles through more addresses than that can only reset
//     buckets (forgetting a client gives it a full bucket): the table fails
//     open for the limit, never closed for a client it forgot.
package ratelimit

import (
	"container/list"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const shards = 64

// DefaultCapacity is the number of clients a Limiter remembers by default.
// An entry costs about 200 bytes, so the table stays under ~15 MB.
const DefaultCapacity = 64 << 10

// Limiter allows each client Rate requests per second on average, in
// bursts of up to Burst. It is safe for concurrent use. A nil *Limiter
// allows everything.
type Limiter struct {
	rate     rate.Limit
	burst    int
	perShard int
	seed     maphash.Seed
	shards   [shards]shard
}

type shard struct {
	mu  sync.Mutex
	m   map[netip.Prefix]*list.Element
	lru list.List // of *entry, most recently seen first
}

type entry struct {
	key netip.Prefix
	lim *rate.Limiter
}

// New returns a Limiter allowing perSecond requests per second and bursts
// of burst per client, remembering about capacity clients (DefaultCapacity
// if capacity <= 0). It returns nil, a Limiter that allows everything, if
// perSecond <= 0.
func New(perSecond float64, burst, capacity int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	l := &Limiter{
		rate:     rate.Limit(perSecond),
		burst:    max(burst, 1),
		perShard: max(capacity/shards, 1),
		seed:     maphash.MakeSeed(),
	}
	for i := range l.shards {
		l.shards[i].m = make(map[netip.Prefix]*list.Element)
	}
	return l
}

// Key is the client an address belongs to: the address itself for IPv4,
// its /64 for IPv6. The zero Addr (a peer whose address is unknown) is
// one client of its own.
func Key(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Allow reports whether a request of client a at now is within its limit,
// and if not, how long until the next one will be.
func (l *Limiter) Allow(a netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	k := Key(a)
	sh := &l.shards[maphash.Comparable(l.seed, k)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var lim *rate.Limiter
	if el, found := sh.m[k]; found {
		sh.lru.MoveToFront(el)
		lim = el.Value.(*entry).lim
	} else {
		if sh.lru.Len() >= l.perShard {
			old := sh.lru.Back()
			sh.lru.Remove(old)
			delete(sh.m, old.Value.(*entry).key)
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		sh.m[k] = sh.lru.PushFront(&entry{key: k, lim: lim})
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request costs nothing
		return false, d
	}
	return true, 0
}

// Len is the number of clients remembered.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}
