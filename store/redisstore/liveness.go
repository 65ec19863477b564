package redisstore

import (
	"context"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// DefaultCacheStaleness is the default of [Options.CacheStaleness].
const DefaultCacheStaleness = 250 * time.Millisecond

// MinCacheStaleness is the smallest [Options.CacheStaleness] accepted: the
// heartbeat runs five times per bound, and much more often than every 2 ms
// would be Redis load for nothing.
const MinCacheStaleness = 10 * time.Millisecond

// heartbeatsPerBound is how many heartbeat rounds fit in the bound. A
// healthy connection's latest proof is then at most one interval plus a
// round trip old, so scheduling delays on a loaded machine (tens of
// milliseconds) rarely make a healthy cache look stale — which would only
// cost uncached reads, never a stale one.
const heartbeatsPerBound = 5

// probeTTL is how long a heartbeat's own cached probe reply lives: shorter
// than any heartbeat interval, so every round misses and goes to Redis.
const probeTTL = time.Millisecond

// liveness bounds what the client-side cache may serve (Options.
// CacheStaleness). Redis delivers the invalidation of a cached key on the
// very connection that read it (RESP3 CLIENT TRACKING without REDIRECT),
// in order with that connection's replies, and rueidis applies it (deletes
// the entry) on the connection's read goroutine before it completes any
// later reply. So a reply on a connection to a command sent at time t
// proves that every write Redis committed before t has been applied to
// that connection's cache. rueidis keeps one cache per connection and
// routes a cached GET by its key's hash slot to one of the node's
// connections, so the heartbeat sends, each round, one command per
// connection the client has: a PING to nodes with a single connection (a
// Cluster's default), and on nodes with several one cached HGET of a probe
// key per connection (DoMultiCache routes each to the connection owning its
// slot's residue; the probe's reply is cached for probeTTL only, and each
// round asks for another field, so every round goes to Redis and no round
// can be answered by another's reply, see probe). Any reply counts, a Redis error (a Cluster
// node's MOVED for a probe key) included: it arrived on that connection
// after everything pushed before it.
//
// until is the start of the last round in which every connection of every
// node answered, plus the bound. A cached record is served only before
// until; so a record revoked at t is served no later than t plus the bound
// (plus the one Get in flight that read until just before it passed),
// whatever happened to the connection: cut, stalled, or a proxy that
// swallows the invalidation. Past until, Get reads through to Redis and so
// fails closed when Redis cannot be reached. One stalled connection stops
// the cache for every key (the store does not know which node serves which
// slot); Gets whose node is reachable then still succeed, uncached.
//
// The heartbeat runs only while the cache may hold entries: it wakes on a
// Get that found the cache stale and keeps going until CacheTTL (the
// longest an entry lives) after the last Get that filled the cache.
type liveness struct {
	bound time.Duration // Options.CacheStaleness; 0: no bound (cache off, or unbounded)
	every time.Duration // bound / heartbeatsPerBound
	idle  time.Duration // no heartbeat this long after the last fill or stale read
	base  time.Time     // origin (monotonic) of the int64 times below, in ns

	until    atomic.Int64                  // cached records are served while now < until
	wanted   atomic.Int64                  // the last fill of the cache or Get that found it stale
	parked   atomic.Bool                   // the heartbeat waits for a wake-up
	inflight atomic.Int32                  // heartbeat rounds under way
	waited   atomic.Int64                  // the until that Gets waited on in vain (serve)
	ended    atomic.Pointer[chan struct{}] // closed (and replaced) when a round ends

	probes   []string // one probe key per connection of a node (several connections)
	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// now returns the monotonic time since base.
func (l *liveness) now() int64 { return int64(time.Since(l.base)) }

// fresh reports whether cached records may be served now. It costs one
// clock reading and one atomic load.
func (l *liveness) fresh() bool { return l.now() < l.until.Load() }

// serve is fresh for a Get about to serve from the cache. While the proof
// is younger than half the bound it is fresh itself. Past that, with a
// round under way, the Get waits for the round to end (at most an interval,
// and never past until) before it answers fresh. A healthy heartbeat keeps
// the proof about an interval old, so only a late round makes Gets wait;
// and a round is late above all when cache hits leave no core idle: Go's
// scheduler polls the network, where the round's reply waits, only when a
// core has nothing else to run (or every 10 ms, behind every runnable
// goroutine), so 64 goroutines that never block delay it by hundreds of
// milliseconds and the cache goes stale. Blocking the hits for a moment is
// what lets the reply in. Gets wait so at most once per proof: if the
// wait brought no newer proof, later Gets serve the rest of it without
// waiting. The bound is untouched: what is served is still decided by
// fresh after the wait.
func (l *liveness) serve(ctx context.Context) bool {
	now, until := l.now(), l.until.Load()
	if now < until-int64(l.bound)/2 {
		return true
	}
	if now >= until {
		return false
	}
	ended := *l.ended.Load()
	if l.inflight.Load() == 0 || l.waited.Load() == until {
		return l.fresh()
	}
	t := time.NewTimer(time.Duration(min(until-now, int64(l.every))))
	select {
	case <-ended:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	if l.until.Load() == until {
		// The wait did not bring a newer proof (a slow or failing round,
		// not a starved one): the rest of this proof's life is served
		// without waiting, as if there were no wait at all.
		l.waited.Store(until)
	}
	return l.fresh()
}

// roundEnded wakes the Gets waiting in serve.
func (l *liveness) roundEnded() {
	next := make(chan struct{})
	close(*l.ended.Swap(&next))
}

// want records that a Get wants the cache (it filled it, or found it
// stale) and wakes the heartbeat if it is idle.
// Only a parked heartbeat is sent a wake-up, so that concurrent misses do
// not contend for the channel; the loop sets parked before it reads wanted
// a last time, and want stores wanted before it reads parked, so one of
// them sees the other (no lost wake-up).
func (l *liveness) want() {
	l.wanted.Store(l.now())
	if l.parked.Load() {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// startLiveness starts the heartbeat of a caching store with a bound;
// wires is the number of connections per node of the client.
func (s *Store) startLiveness(bound, ttl time.Duration, wires int) {
	l := &s.live
	l.bound = bound
	l.every = bound / heartbeatsPerBound
	l.idle = ttl + bound
	l.base = time.Now()
	l.wanted.Store(math.MinInt64 / 2)
	ended := make(chan struct{})
	l.ended.Store(&ended)
	l.wake = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.done = make(chan struct{})
	if wires > 1 {
		l.probes = probeKeys(s.client, s.prefix, wires)
	}
	go s.heartbeat()
}

// stopLiveness stops the heartbeat and waits for it to end; later calls
// do nothing.
func (s *Store) stopLiveness() {
	if s.live.stop == nil {
		return
	}
	s.live.stopOnce.Do(func() { close(s.live.stop) })
	<-s.live.done
}

// probeKeys returns, for a client with wires connections per node, one
// key for each connection: rueidis picks a cached command's connection as
// its key's hash slot modulo wires (a power of two).
func probeKeys(c rueidis.Client, prefix string, wires int) []string {
	keys := make([]string, wires)
	found := 0
	for n := 0; found < wires; n++ {
		k := prefix + "live:" + strconv.Itoa(n) // no hash tag: each n has its own slot
		cmd := c.B().Get().Key(k).Cache()
		w := int(cmd.Slot()) & (wires - 1)
		if keys[w] == "" {
			keys[w] = k
			found++
		}
	}
	return keys
}

// multiplexFor returns the explicit ClientOption.PipelineMultiplex that
// rueidis uses for multiplex on a client of mode: rueidis's default for 0
// (2^0 = one connection per node for a Cluster; otherwise 2^log2(GOMAXPROCS),
// at most four), -1 for one connection. Open passes the result to rueidis,
// so that the heartbeat knows how many connections each node has.
func multiplexFor(mode rueidis.ClientMode, multiplex int) int {
	if multiplex == 0 && mode != rueidis.ClientModeCluster {
		if multiplex = min(int(math.Log2(float64(runtime.GOMAXPROCS(0)))), 2); multiplex == 0 {
			multiplex = -1
		}
	}
	return multiplex
}

// wiresPerNode is how many connections rueidis opens to each node with
// PipelineMultiplex set to multiplexFor's result m.
func wiresPerNode(m int) int { return 1 << max(m, 0) }

// maxRounds bounds the rounds under way at once: a round gives up after
// the bound, that is after heartbeatsPerBound intervals.
const maxRounds = heartbeatsPerBound + 1

// heartbeat starts a round every interval while the cache is in use. Rounds
// overlap: one that waits (a loaded machine, a slow reply) does not delay
// the next, so a healthy connection's latest proof stays about one round
// trip plus one interval old even when round trips take most of the bound.
// Each round proves freshness as of its own start, so until only ever rises
// to the latest start of a round that completed, whatever their order.
func (s *Store) heartbeat() {
	l := &s.live
	var rounds sync.WaitGroup
	defer close(l.done)
	defer rounds.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var round uint64
	for {
		if l.now()-l.wanted.Load() > int64(l.idle) {
			l.parked.Store(true)
			if l.now()-l.wanted.Load() > int64(l.idle) {
				select {
				case <-l.wake:
				case <-l.stop:
					return
				}
			}
			l.parked.Store(false)
		}
		start := l.now()
		if l.inflight.Load() < maxRounds {
			round++
			r := round
			l.inflight.Add(1)
			rounds.Go(func() {
				if s.heartbeatRound(r) {
					l.raise(start + int64(l.bound))
				}
				l.inflight.Add(-1)
				l.roundEnded()
			})
		}
		timer.Reset(time.Duration(start + int64(l.every) - l.now()))
		select {
		case <-timer.C:
		case <-l.stop:
			return
		}
	}
}

// raise sets until to v unless it is already later.
func (l *liveness) raise(v int64) {
	for {
		cur := l.until.Load()
		if v <= cur || l.until.CompareAndSwap(cur, v) {
			return
		}
	}
}

// heartbeatRound sends one heartbeat on every connection of every node,
// bounded by the staleness bound (a later answer would prove too little),
// and reports whether all of them answered.
func (s *Store) heartbeatRound(round uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.live.bound)
	defer cancel()
	nodes := s.client.Nodes()
	if len(nodes) == 1 {
		for _, c := range nodes {
			return s.probe(ctx, c, round)
		}
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, c := range nodes {
		wg.Go(func() {
			if !s.probe(ctx, c, round) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	return len(nodes) > 0 && !failed.Load()
}

// probeFields is how many distinct probe commands each connection cycles
// through (see probe).
const probeFields = 1024

// probe sends one heartbeat on each of node's connections and reports
// whether every one answered. The cached probe of round n is HGET <probe
// key> <n mod probeFields>: rueidis keys its cache entries, and so its
// in-flight reads, by the whole command, so a reply to an earlier round's
// probe that timed out (a stalled connection that resumes) can only settle
// that round's entry, never this round's — this round proves only what a
// reply to its own command proves. A reply delayed longer than
// probeFields rounds (51 s at the default bound) would have had rueidis's
// own keepalive close the connection first.
func (s *Store) probe(ctx context.Context, node rueidis.Client, round uint64) bool {
	if len(s.live.probes) == 0 {
		// Do matches replies to commands in order: no earlier PING's reply
		// can answer this one.
		return node.Do(ctx, node.B().Ping().Build()).NonRedisError() == nil
	}
	field := strconv.FormatUint(round%probeFields, 10)
	multi := make([]rueidis.CacheableTTL, len(s.live.probes))
	for i, k := range s.live.probes {
		multi[i] = rueidis.CT(node.B().Hget().Key(k).Field(field).Cache().ToStaticTTL(), probeTTL)
	}
	for _, r := range node.DoMultiCache(ctx, multi...) {
		if r.NonRedisError() != nil || r.IsCacheHit() { // a hit proves nothing
			return false
		}
	}
	return true
}
