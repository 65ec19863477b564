// Package redisstore keeps latch sessions in Redis (standalone, Sentinel or
// Cluster, Redis 7.0 or later) through github.com/redis/rueidis, so that any
// number of latch replicas share them.
//
// Most users need one call:
//
//	s, err := redisstore.Open(ctx, "redis://127.0.0.1:6379/0")
//	// or "redis-cluster://10.0.0.1:6379,10.0.0.2:6379", see Open for every form
//	defer s.Close()
//
// and pass s to latch. [New] wraps a rueidis client you already have.
//
// # Key layout
//
// Every key of one subject carries the subject's 2-byte tag (the first two
// bytes of each of its session IDs, see store.SubjectTag) as a Redis Cluster
// hash tag, so a subject's sessions and its index live in one hash slot:
//
//	latch:{t:abcd}:s:<id>       the record: a string, ~180 bytes + subject, IP,
//	                            user agent, data and claims, expiring (PEXPIREAT)
//	                            at the record's deadline; tombstones keep it
//	latch:{t:abcd}:u:<subject>  the subject index: a sorted set of the live
//	                            sessions' <id>, scored by LastSeenAt (Unix ms),
//	                            expiring with its longest-lived entry
//	latch:{keyring}             the signing keyring: a hash of version and blob
//
// where abcd is the tag in hex and <id> the base64url form of the ID's 16
// random bytes. "latch:" is [Options.Prefix].
//
// A record's value ends in a 4-byte seal (SHA-1 of <id> and the value), set
// by Go and by the scripts alike and checked before every read and rewrite:
// a damaged value is store.ErrUnavailable and store.ErrCorrupt, never a
// session. Values written without one (by binaries older than the seal, or
// with seal=false, [Options.Unsealed], during a rolling upgrade from them)
// are still read.
//
// # Atomicity
//
// Create (with eviction beyond the per-subject limit), Update (a
// compare-and-swap on the version), RotateRefresh (a compare-and-swap on
// the current refresh hash), Revoke, RevokeSubject, List and SaveKeyring are
// each one Lua script (EVALSHA) over keys of a single hash slot, so each is
// atomic on a Cluster shard as on a standalone server, and a revoke-all
// races safely with a concurrent login of the same subject. Nothing uses
// KEYS or SCAN. Every write and List prunes the subject's index of entries
// whose record is gone (Redis expired it at its deadline), revoked or
// unreadable: List, RevokeSubject and a Create with a limit walk the whole
// index, other writes the eight least recently seen entries. Entries are
// judged dead by Redis's clock (the key's expiry), not by the caller's now,
// which List and eviction use only to decide what counts as live. So dead
// entries do not pile up, and the index of a subject whose sessions all
// ended expires by itself.
//
// # Client-side caching
//
// Get uses rueidis's server-assisted client-side caching (RESP3 CLIENT
// TRACKING, opt-in mode): a record read once is then served from local
// memory until Redis reports that its key changed, [Options.CacheTTL]
// passes (default 1 minute) or the record's own expiry comes. The cache is
// bounded ([Options.CacheSize] per connection, default 16 MiB, least
// recently used first). Because every write on any client makes Redis send
// an invalidation to every client that cached the key, a revocation through
// one replica is seen by the next Get on every other replica within the
// time an invalidation message takes to arrive (well under a millisecond on
// a local network). On the replica that wrote, Get also bypasses the cache
// for a second after its own write, so it reads its own writes even before
// the invalidation arrives. If a connection drops, rueidis empties that
// connection's cache, so a lost invalidation cannot leave a stale entry.
//
// A connection that goes silent without dropping (a stalled proxy, a cut
// whose packets are silently dropped) is bounded too: a cached record is
// served only while every connection that can hold cached entries answered
// a heartbeat sent within [Options.CacheStaleness] (default 250 ms; URL
// parameter cache_staleness). Redis delivers a key's invalidation on the
// connection that cached it, in order with its replies, so such an answer
// proves that every write committed before the heartbeat was sent has
// reached the cache. Past the bound Get reads through to Redis, and so
// fails closed with ErrUnavailable when Redis cannot be reached:
// CacheStaleness is the longest time a partitioned replica can accept a
// revoked session (plus the one request in flight as the bound passes).
// The heartbeat runs five times per bound on each connection, and only
// while the cache is in use (see BENCHMARKS.md for its cost).
//
// A cache hit is not decoded again: the store keeps the record decoded from
// a cached reply with the reply's bytes and returns it while rueidis
// answers with those same bytes (a bounded, direct-mapped table, see
// [Options.CacheSize]), so it is never staler than rueidis's cache.
// [Options.DisableCache] turns caching off.
//
// # Events
//
// The store implements [store.EventLog]: every script that revokes, evicts
// or renews PUBLISHes its events on "<prefix>events" in the same atomic step
// as the write, and a Cluster relays a PUBLISH to every node, so one
// SUBSCRIBE sees every shard. Pub/Sub keeps nothing, so a subscription whose
// connection drops fails and the manager sends its subscribers a reset; its
// liveness is proven every 25 ms by a heartbeat echoed on the subscribed
// connection. See events.go for why not Streams.
//
// # Failure
//
// The store fails closed: every call is bounded by [Options.Timeout]
// (default 1s, unless the caller's context has an earlier deadline; calls
// that start within an eighth of it share one deadline, so a call may run
// up to an eighth longer and makes no timer of its own), the
// dial by [Options.DialTimeout], and any network error, timeout, script
// error or undecodable value is returned as an error matching
// store.ErrUnavailable, never as a record. rueidis reconnects by itself, so
// the store recovers without a restart when Redis comes back; scripts are
// reloaded after a server restart. A write whose outcome is unknown
// (the connection dropped after sending it) is reported as ErrUnavailable.
//
// Only hashes of secrets are stored (see package store), so the contents of
// Redis, MONITOR output or a replica's copy cannot be replayed as a session.
package redisstore
