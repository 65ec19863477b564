package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/deadline"
	"github.com/redis/rueidis"
)

// Defaults of [Options].
const (
	DefaultPrefix      = "latch:"
	DefaultTimeout     = time.Second
	DefaultDialTimeout = time.Second
	DefaultCacheSize   = 16 << 20
	DefaultCacheTTL    = time.Minute
)

// Options configure a [Store]. The zero value means every default.
type Options struct {
	// Prefix starts every key the store writes; default "latch:". It must
	// not contain '{' or '}' (they would move the hash tag).
	Prefix string

	// Timeout bounds every call whose context has no earlier deadline, and
	// is the connection read/write timeout of clients made by Open;
	// default 1s. When it passes the call fails with ErrUnavailable. Calls
	// that start within an eighth of Timeout of each other share one
	// deadline, so a call may run up to an eighth longer. A context
	// cancelled before a call fails it at once; one cancelled while the
	// call waits for Redis is noticed when Redis answers or Timeout passes.
	Timeout time.Duration

	// DisableCache turns client-side caching off: every Get is a round trip.
	DisableCache bool

	// CacheTTL is the longest a Get result is served from the local cache
	// (Redis tracking evicts it sooner when the key changes); default 1m.
	CacheTTL time.Duration

	// CacheStaleness bounds how long a replica that stopped hearing from
	// Redis (a cut or stalled connection, a hung proxy) may go on serving
	// cached records: it is the longest time a partitioned replica can
	// accept a revoked session. A cached record is served only while every
	// connection holding cached entries answered a heartbeat sent within
	// the last CacheStaleness; past that, Get reads through to Redis and so
	// fails closed when Redis cannot be reached. Default 250ms, at least
	// MinCacheStaleness. The heartbeat runs five times per bound on each
	// connection while the cache is in use, see BENCHMARKS.md for its cost.
	// A Get that finds the latest answer older than half the bound while a
	// heartbeat is under way waits for it, at most a fifth of the bound,
	// rather than read through: on a machine whose cores never idle, that
	// is what lets the heartbeat's reply be read.
	// A negative value removes the bound (the cache then trusts a silent
	// connection until rueidis's own keepalive gives up, about two seconds
	// or more): only for measuring what the bound costs.
	CacheStaleness time.Duration

	// Unsealed writes record values without their seal (format 1, see
	// codec.go), which binaries older than the seal can read: only for the
	// first step of a rolling upgrade from them, with every new replica
	// unsealed until no old one is left. Sealed values are still read and
	// checked. URL parameter seal=false.
	Unsealed bool

	// PipelineMultiplex is rueidis's ClientOption.PipelineMultiplex: Open
	// passes it on (0: rueidis's default), and a client given to New must
	// have been made with this same value, so that the heartbeat of
	// CacheStaleness reaches every connection that holds cached entries.
	PipelineMultiplex int

	// The fields below apply to the client Open makes; New ignores them.

	// DialTimeout bounds connecting to a server; default 1s.
	DialTimeout time.Duration
	// CacheSize is the client-side cache size in bytes per connection to
	// one Redis node; default 16 MiB. Least recently used entries go first.
	// The store also keeps up to CacheSize/512 decoded records (rounded
	// to a power of two, 256 to 65,536) of the cached replies, so that a
	// cache hit is not decoded again, and a quarter as many (at least 256)
	// of the records last read past the cache (every read with
	// DisableCache), about 800 bytes each, so that a read whose reply did
	// not change is not decoded again either; New uses CacheSize for these
	// alone.
	CacheSize int
	// TLSConfig is used by the rediss schemes; default: TLS 1.2 or later,
	// the server verified against the system roots and the dialed host name.
	TLSConfig *tls.Config
	// ClientName is sent with CLIENT SETNAME.
	ClientName string
	// Dial, if set, makes every connection to addr (a host:port of the URL
	// or one a Cluster or Sentinel announced), for a custom network path;
	// TLS, for the rediss schemes, is layered on top by the store.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (the URL's user and password are for the master).
	SentinelUsername, SentinelPassword string
}

// Option adjusts the Options of [Open], after the URL's query parameters.
type Option func(*Options)

func (o *Options) fill() error {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return errors.New("redisstore: Prefix must not contain '{' or '}': they would change the hash slot of the keys")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheStaleness == 0 {
		o.CacheStaleness = DefaultCacheStaleness
	}
	if o.CacheStaleness > 0 && o.CacheStaleness < MinCacheStaleness {
		return fmt.Errorf("redisstore: CacheStaleness must be at least %v (or negative for no bound)", MinCacheStaleness)
	}
	return nil
}

// Store is a [store.Store] on Redis. It also implements [store.KeyStore]
// and [store.Pinger]. Its methods are safe for concurrent use; the zero
// value is not usable: make one with [Open] or [New].
type Store struct {
	client rueidis.Client
	own    bool // Close closes client
	// pin is whether the store may keep pinned commands and send them
	// again (the decoded-record and memo slots' GETs): only on a client Open
	// made. rueidis's standalone client with redirects (one handed to New
	// may be one) recycles even pinned commands after a call, and a
	// recycled command is rebuilt by other callers.
	pin     bool
	prefix  string
	timeout time.Duration
	cache   bool
	ttl     time.Duration
	sealArg string // the scripts' last argument: "sealed" or "unsealed"

	// live bounds the staleness of cached records; its bound is 0 when
	// caching is off or unbounded.
	live liveness

	deadlines deadline.Deadlines // the contexts that bound calls by timeout

	// decoded remembers, per slot (a hash of the ID), the record last
	// decoded from a cached reply together with the reply's bytes; see
	// cachedRecord.
	decoded []atomic.Pointer[decoded]

	// memo remembers the records last read past the cache; see memo.
	memo []atomic.Pointer[memo]

	// written remembers keys this Store wrote in the last writeGuard, by a
	// hash of the ID: Get reads those past the local cache. Redis delivers
	// the invalidation of a key on the connection that cached it, which
	// may be a moment after the write's reply arrived on another one; this
	// closes that window, so a Get after a Revoke on the same Store never
	// sees the record live. A collision only costs an uncached read. Each
	// holds the monoNow until which its keys are guarded.
	written [1 << 14]atomic.Int64
	// keyringWritten is until when KeyringVersion bypasses the cache after
	// this store saved the keyring (monoNow), as written is for records.
	keyringWritten atomic.Int64

	events // the event log; see events.go
}

// writeGuard is how long Get bypasses the cache for a key this Store wrote.
const writeGuard = time.Second

// monoNow is nanoseconds since the process started on the monotonic
// clock, plus one (0 means "no guard"): the write guards are kept in it
// because a step of the wall clock does not move it. In unix nanoseconds,
// a step forward would end a guard early, and a Get right after a Revoke
// on this Store could serve the cached record live until Redis's
// invalidation arrived (RELIABILITY.md, the clock step).
func monoNow() int64 { return int64(time.Since(monoBase)) + 1 }

var monoBase = time.Now()

// Open connects to the Redis named by rawURL and returns a Store that owns
// the connection (Close closes it). URL forms:
//
//	redis://[user:password@]host[:port][/db]          standalone (port 6379, db 0)
//	rediss://[user:password@]host[:port][/db]         the same over TLS
//	redis-sentinel://[user:password@]h1[:p],h2[:p]/master-name[/db]
//	redis-sentinel://h1:26379,h2:26379?master=master-name&db=2
//	                                                  Sentinel (port 26379); the
//	                                                  user and password are the master's
//	redis-cluster://[user:password@]h1[:p],h2[:p],…  Redis Cluster seed nodes
//	rediss-sentinel://…, rediss-cluster://…          over TLS
//
// A password with reserved characters (@ : / ? #) must be percent-encoded.
// Query parameters override Options defaults and are overridden by opts:
// timeout, dial_timeout, cache (true/false), cache_ttl, cache_staleness
// (Options.CacheStaleness, e.g. 100ms), cache_size (bytes per connection),
// prefix, client_name, db, seal (false: Options.Unsealed), and master
// (Sentinel). Unknown parameters are
// refused. Errors never quote the URL.
//
// Open fails if no server answers within the dial timeout.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	var o Options
	t, err := parseURL(rawURL, &o)
	if err != nil {
		return nil, err
	}
	for _, f := range opts {
		f(&o)
	}
	if err := o.fill(); err != nil {
		return nil, err
	}
	co := t.clientOption(&o)
	type result struct {
		c   rueidis.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(co)
		ch <- result{c, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, unavailable("connect", ctx.Err())
	}
	if r.err != nil {
		return nil, unavailable("connect", r.err)
	}
	s, err := New(r.c, o)
	if err != nil {
		r.c.Close()
		return nil, err
	}
	s.own = true
	s.pin = true
	return s, nil
}

// New returns a Store on an existing rueidis client, which it does not
// own: Close leaves it open. For client-side caching the client must have
// been made without DisableCache (and on RESP3, as rueidis does by default).
// Of o, New uses Prefix, Timeout, DisableCache, CacheTTL, CacheStaleness,
// PipelineMultiplex and CacheSize (for the size of the decoded-record
// cache, see Options.CacheSize). With caching on and a bound, New starts
// the heartbeat of CacheStaleness, which Close stops.
func New(client rueidis.Client, o Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: New needs a client")
	}
	if err := o.fill(); err != nil {
		return nil, err
	}
	s := &Store{
		client:  client,
		prefix:  o.Prefix,
		timeout: o.Timeout,
		cache:   !o.DisableCache,
		ttl:     o.CacheTTL,
		sealArg: "sealed",
		events:  newEvents(o.Prefix),
	}
	if o.Unsealed {
		s.sealArg = "unsealed"
	}
	s.deadlines.Init(o.Timeout)
	s.memo = make([]atomic.Pointer[memo], memoSlots(o.CacheSize))
	if s.cache {
		s.decoded = make([]atomic.Pointer[decoded], decodedSlots(o.CacheSize))
		if o.CacheStaleness > 0 {
			s.startLiveness(o.CacheStaleness, o.CacheTTL, wiresPerNode(multiplexFor(client.Mode(), o.PipelineMultiplex)))
		}
	}
	return s, nil
}

// Close stops the heartbeat and closes the client if Open made it.
func (s *Store) Close() error {
	s.stopLiveness()
	if s.own {
		s.client.Close()
	}
	return nil
}

// Client returns the underlying rueidis client. Most users won't need it.
func (s *Store) Client() rueidis.Client { return s.client }

var _ interface {
	store.Store
	store.KeyStore
	store.Pinger
	store.FreshReader
} = (*Store)(nil)

func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, store.ErrUnavailable, err)
}

// call returns ctx bounded by the store's timeout (see bound) and a
// cancel function, which has nothing to release.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.bound(ctx), noCancel
}

func noCancel() {}

const hexDigits = "0123456789abcdef"

// slotPrefix is "<prefix>{t:abcd}:": every key of the subjects with tag
// shares its hash slot.
func (s *Store) slotPrefix(tag uint16) string {
	b := make([]byte, 0, len(s.prefix)+9)
	return string(appendSlotPrefix(b, s.prefix, tag))
}

func appendSlotPrefix(b []byte, prefix string, tag uint16) []byte {
	b = append(b, prefix...)
	b = append(b, "{t:"...)
	b = append(b, hexDigits[tag>>12], hexDigits[tag>>8&15], hexDigits[tag>>4&15], hexDigits[tag&15])
	return append(b, "}:"...)
}

// recordKey is "<prefix>{t:abcd}:s:<member>".
func (s *Store) recordKey(id store.ID) string {
	b := make([]byte, 0, len(s.prefix)+9+2+22)
	b = appendSlotPrefix(b, s.prefix, id.Tag())
	b = append(b, "s:"...)
	b = base64.RawURLEncoding.AppendEncode(b, id[2:]) // member(id), without its string
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// indexKey is "<prefix>{t:abcd}:u:<subject>", a sorted set of members
// scored by LastSeenAt in Unix milliseconds.
func (s *Store) indexKey(subject string) string {
	return s.slotPrefix(store.SubjectTag(subject)) + "u:" + subject
}

func (s *Store) keyringKey() string { return s.prefix + "{keyring}" }

func guardSlot(id store.ID) int {
	return int(binary.LittleEndian.Uint32(id[2:6]) & (1<<14 - 1))
}

func (s *Store) markWritten(ids ...store.ID) {
	until := monoNow() + int64(writeGuard)
	for _, id := range ids {
		s.written[guardSlot(id)].Store(until)
	}
}

// recentlyWritten reports whether id's slot was written within writeGuard.
// A slot found expired is cleared, so that most Gets need not read the clock.
func (s *Store) recentlyWritten(id store.ID) bool {
	w := &s.written[guardSlot(id)]
	v := w.Load()
	if v == 0 {
		return false
	}
	if v > monoNow() {
		return true
	}
	w.CompareAndSwap(v, 0)
	return false
}

func checkSubject(subject string) error {
	if err := store.ValidSubject(subject); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

// Get implements [store.Store]. With caching on it is served from local
// memory when this process has read the key before and Redis has not
// invalidated it since, and only while the connections that deliver those
// invalidations answered a heartbeat within Options.CacheStaleness.
//
// A cache hit costs no allocation (one of 32 bytes when ctx carries values
// or a cancellation but no deadline within the timeout, see bound), two
// clock readings (the staleness bound's and the timeout's), no command
// building and no decoding: the record decoded from a cached reply is kept with the reply's
// bytes and the pinned GET command, and reused for as long as rueidis
// answers with those very bytes. rueidis replaces them when Redis
// invalidates the key, the entry expires or the connection drops, so the
// decoded record is never staler than rueidis's own cache, which stays the
// only authority.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if id.IsZero() {
		return nil, store.ErrNotFound
	}
	stale := s.live.bound > 0 && !s.live.serve(ctx)
	if stale {
		s.live.want()
	}
	if !s.cache || stale || s.recentlyWritten(id) {
		return s.GetFresh(ctx, id)
	}

	slot := &s.decoded[decodedSlot(id, len(s.decoded))]
	d := slot.Load()
	var cmd rueidis.Cacheable
	switch {
	case !s.pin:
		cmd = s.client.B().Get().Key(s.recordKey(id)).Cache()
	case d != nil && d.id == id:
		cmd = d.cmd
	default:
		cmd = s.client.B().Get().Key(s.recordKey(id)).Cache().Pin()
	}
	res := s.client.DoCache(s.bound(ctx), cmd, s.ttl)
	if s.live.bound > 0 && !res.IsCacheHit() {
		s.live.want() // the cache holds this entry for up to CacheTTL: keep proving it
	}
	v, err := res.ToString()
	if err != nil {
		return s.decodeReply(id, v, err)
	}
	if d != nil && d.id == id && len(d.raw) == len(v) && unsafe.StringData(d.raw) == unsafe.StringData(v) {
		return d.rec, nil // the very bytes d.rec was decoded from
	}
	r, err := s.decodeReply(id, v, nil)
	if err == nil {
		slot.Store(&decoded{id: id, cmd: cmd, raw: v, rec: r})
	}
	return r, err
}

// encode is encodeValue, without the seal if the store is Unsealed.
func (s *Store) encode(b []byte, r *store.Record, v uint64) []byte {
	if s.sealArg == "unsealed" {
		start := len(b)
		b = encodeBody(b, r, v)
		b[start] = valueLegacy
		return b
	}
	return encodeValue(b, r, v)
}

// GetFresh implements [store.FreshReader]: Get past the client-side cache,
// one round trip to Redis.
func (s *Store) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	if id.IsZero() {
		return nil, store.ErrNotFound
	}
	return s.readFresh(ctx, id)
}

// decodeReply turns the reply to a GET of id's record key into Get's result.
func (s *Store) decodeReply(id store.ID, v string, err error) (*store.Record, error) {
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return nil, store.ErrNotFound
		}
		return nil, unavailable("get", err)
	}
	r, err := decodeValue(id, unsafe.Slice(unsafe.StringData(v), len(v)))
	if err != nil {
		return nil, unavailable("get", err)
	}
	return r, nil
}

// decoded is a record decoded from a reply served by the client-side cache.
// raw is that reply's string, which shares its bytes with rueidis's cache
// entry: while rueidis answers with a string at the same address and of
// the same length, it is the same immutable value (holding raw keeps the
// bytes from being freed and reused), so rec is its decoding. Records are
// shared and read-only (store's contract), so rec may be returned as is.
type decoded struct {
	id store.ID
	// cmd is the GET of the record key, pinned (rueidis does not recycle
	// it, and only reads it), so a hit does not build it again: building
	// (the pool, the key's CRC16 slot) was a fifth of a hit's CPU.
	cmd rueidis.Cacheable
	raw string
	rec *store.Record
}

// decodedSlots is the size of the decoded-record cache for a client-side
// cache of cacheSize bytes per connection.
func decodedSlots(cacheSize int) int {
	n := 256
	for n < cacheSize/512 && n < 1<<16 {
		n <<= 1
	}
	return n
}

func decodedSlot(id store.ID, n int) int {
	return int(binary.LittleEndian.Uint64(id[6:14]) & uint64(n-1))
}

// reply parses a script reply into its status code and the rest.
func reply(res rueidis.RedisResult) (int64, []rueidis.RedisMessage, error) {
	arr, err := res.ToArray()
	if err != nil {
		return 0, nil, err
	}
	if len(arr) == 0 {
		return 0, nil, errors.New("empty script reply")
	}
	code, err := arr[0].AsInt64()
	if err != nil {
		return 0, nil, err
	}
	return code, arr[1:], nil
}

// Create implements [store.Store]. The record, its index entry and any
// evictions are written by one script on the subject's hash slot.
func (s *Store) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := store.Validate(rec); err != nil {
		return nil, fmt.Errorf("redisstore: create: %w", err)
	}
	tag := store.SubjectTag(rec.Subject)
	if max > 0 && !rec.Live(rec.CreatedAt) {
		max++ // a record dead at its own CreatedAt does not count toward max
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	sp := s.slotPrefix(tag)
	m := member(rec.ID)
	val := s.encode(make([]byte, 0, 256+len(rec.Subject)+len(rec.IP)+len(rec.UserAgent)+len(rec.Data)+len(rec.Claims)), rec, 1)
	at := be64(rec.CreatedAt)
	s.markWritten(rec.ID)
	code, rest, err := reply(createScript.Exec(ctx, s.client,
		[]string{sp + "s:" + m, sp + "u:" + rec.Subject},
		[]string{sp, string(val), itoa(ceilMillis(rec.Deadline())), itoa(floorMillis(rec.LastSeenAt)), m,
			strconv.Itoa(max), at, store.ReasonEvicted, at, s.evChannel, s.eventID(), s.sealArg}))
	s.markWritten(rec.ID)
	if err != nil {
		return nil, unavailable("create", err)
	}
	switch code {
	case codeOK:
	case codeExists:
		return nil, store.ErrExists
	default:
		return nil, unavailable("create", fmt.Errorf("unexpected script status %d", code))
	}
	if len(rest) == 0 {
		return nil, nil
	}
	ms, err := rest[0].AsStrSlice()
	if err != nil {
		return nil, unavailable("create", err)
	}
	return s.ids(tag, ms, "create")
}

func (s *Store) ids(tag uint16, ms []string, op string) ([]store.ID, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	ids := make([]store.ID, 0, len(ms))
	for _, m := range ms {
		id, err := parseMember(tag, m)
		if err != nil {
			return ids, unavailable(op, err)
		}
		ids = append(ids, id)
	}
	s.markWritten(ids...)
	return ids, nil
}

// maxExactVersion is the largest version the scripts compare exactly (Lua
// numbers are doubles); stored versions never come near it.
const maxExactVersion = 1<<53 - 1

// Update implements [store.Store].
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.Validate(rec); err != nil {
		return fmt.Errorf("redisstore: update: %w", err)
	}
	if rec.Version >= maxExactVersion {
		return store.ErrConflict
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	sp := s.slotPrefix(rec.ID.Tag())
	m := member(rec.ID)
	val := s.encode(make([]byte, 0, 256+len(rec.Subject)+len(rec.IP)+len(rec.UserAgent)+len(rec.Data)+len(rec.Claims)+len(rec.RevokeReason)), rec, rec.Version+1)
	revoked := "0"
	if rec.Revoked() {
		revoked = "1"
	}
	s.markWritten(rec.ID)
	code, _, err := reply(updateScript.Exec(ctx, s.client,
		[]string{sp + "s:" + m, sp + "u:" + rec.Subject},
		[]string{sp, strconv.FormatUint(rec.Version, 10), string(val), itoa(ceilMillis(rec.Deadline())),
			itoa(floorMillis(rec.LastSeenAt)), m, rec.Subject, revoked, s.evChannel, s.eventID()}))
	s.markWritten(rec.ID)
	if err != nil {
		return unavailable("update", err)
	}
	switch code {
	case codeOK:
		return nil
	case codeNotFound:
		return store.ErrNotFound
	case codeConflict:
		return store.ErrConflict
	case codeSubject:
		return fmt.Errorf("redisstore: Update may not change the subject: %w", store.ErrConflict)
	case codeCorrupt:
		return unavailable("update", errCorrupt)
	}
	return unavailable("update", fmt.Errorf("unexpected script status %d", code))
}

// RotateRefresh implements [store.Store].
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	if r.ID.IsZero() {
		return nil, store.ErrNotFound
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	sp := s.slotPrefix(r.ID.Tag())
	m := member(r.ID)
	var prev, rot string
	if r.Next.Previous != (store.Hash{}) {
		prev = string(r.Next.Previous[:])
	}
	if unixNano(r.Next.RotatedAt) != 0 {
		rot = be64(r.Next.RotatedAt)
	}
	s.markWritten(r.ID)
	code, rest, err := reply(rotateScript.Exec(ctx, s.client,
		[]string{sp + "s:" + m},
		[]string{sp, string(r.Expect[:]), string(r.Next.Key[:]), string(r.Next.Current[:]), prev, rot,
			strconv.FormatUint(uint64(r.Next.Generation), 10), be64(r.LastSeenAt), be64(r.IdleExpiresAt),
			itoa(floorMillis(r.LastSeenAt)), m, s.sealArg}))
	s.markWritten(r.ID)
	if err != nil {
		return nil, unavailable("rotate refresh", err)
	}
	switch code {
	case codeOK, codeConflict:
		if len(rest) == 0 {
			return nil, unavailable("rotate refresh", errors.New("script reply without a record"))
		}
		v, err := rest[0].ToString()
		if err != nil {
			return nil, unavailable("rotate refresh", err)
		}
		rec, err := decodeValue(r.ID, []byte(v))
		if err != nil {
			return nil, unavailable("rotate refresh", err)
		}
		if code == codeConflict {
			return rec, store.ErrConflict
		}
		return rec, nil
	case codeNotFound:
		return nil, store.ErrNotFound
	case codeCorrupt:
		return nil, unavailable("rotate refresh", errCorrupt)
	}
	return nil, unavailable("rotate refresh", fmt.Errorf("unexpected script status %d", code))
}

// Revoke implements [store.Store]. The tombstone keeps the record's
// deadline as its expiry.
func (s *Store) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := store.ValidReason(reason, at); err != nil {
		return fmt.Errorf("redisstore: revoke: %w", err)
	}
	if id.IsZero() {
		return store.ErrNotFound
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	sp := s.slotPrefix(id.Tag())
	m := member(id)
	s.markWritten(id)
	code, _, err := reply(revokeScript.Exec(ctx, s.client,
		[]string{sp + "s:" + m}, []string{sp, m, reason, be64(at), s.evChannel, s.eventID(), s.sealArg}))
	s.markWritten(id)
	if err != nil {
		return unavailable("revoke", err)
	}
	switch code {
	case codeOK:
		return nil
	case codeNotFound:
		return store.ErrNotFound
	case codeCorrupt:
		return unavailable("revoke", errCorrupt)
	}
	return unavailable("revoke", fmt.Errorf("unexpected script status %d", code))
}

// RevokeSubject implements [store.Store]: one script on the subject's hash
// slot revokes every session in its index (live or expired by at) and
// empties the index.
func (s *Store) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	if err := store.ValidReason(reason, at); err != nil {
		return nil, fmt.Errorf("redisstore: revoke subject: %w", err)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	tag := store.SubjectTag(subject)
	sp := s.slotPrefix(tag)
	var ex string
	if !except.IsZero() && except.Tag() == tag {
		ex = member(except)
	}
	res := revokeSubjectScript.Exec(ctx, s.client, []string{sp + "u:" + subject}, []string{sp, ex, reason, be64(at), s.evChannel, s.eventID(), s.sealArg})
	ms, err := res.AsStrSlice()
	if err != nil {
		return nil, unavailable("revoke subject", err)
	}
	return s.ids(tag, ms, "revoke subject")
}

// List implements [store.Store]. It reads the whole index in one script,
// which also forgets the entries of records no longer live at now.
func (s *Store) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	tag := store.SubjectTag(subject)
	sp := s.slotPrefix(tag)
	arr, err := listScript.Exec(ctx, s.client, []string{sp + "u:" + subject}, []string{sp, be64(now)}).ToArray()
	if err != nil {
		return nil, unavailable("list", err)
	}
	if len(arr)%2 != 0 {
		return nil, unavailable("list", errors.New("odd script reply"))
	}
	out := make([]*store.Record, 0, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		m, err1 := arr[i].ToString()
		v, err2 := arr[i+1].ToString()
		if err := errors.Join(err1, err2); err != nil {
			return nil, unavailable("list", err)
		}
		id, err := parseMember(tag, m)
		if err != nil {
			return nil, unavailable("list", err)
		}
		r, err := decodeValue(id, []byte(v))
		if err != nil {
			return nil, unavailable("list", err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *store.Record) int {
		if c := b.LastSeenAt.Compare(a.LastSeenAt); c != 0 {
			return c
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	return out, nil
}

// Ping implements [store.Pinger]: it pings every node the client knows
// (one for standalone and Sentinel, each shard for Cluster).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	for addr, c := range s.client.Nodes() {
		if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
			return unavailable("ping "+addr, err)
		}
	}
	return nil
}

// KeyringVersion implements [store.KeyringVersioner]. With caching on, the
// version field is served from the client-side cache, under the same
// staleness bound as Get: a keyring saved by another replica invalidates
// it, and while invalidation is not proven alive the field is read from
// Redis. A hit costs no round trip, so the keyring can ask on every online
// verification.
func (s *Store) KeyringVersion(ctx context.Context) (uint64, error) {
	stale := s.live.bound > 0 && !s.live.serve(ctx)
	if stale {
		s.live.want()
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var res rueidis.RedisResult
	if !s.cache || stale || s.keyringWritten.Load() > monoNow() {
		// Like Get after a write: this client's own save invalidates its
		// cache asynchronously, so read the field itself for a while.
		res = s.client.Do(ctx, s.client.B().Hget().Key(s.keyringKey()).Field("v").Build())
	} else {
		res = s.client.DoCache(ctx, s.client.B().Hget().Key(s.keyringKey()).Field("v").Cache(), s.ttl)
		if s.live.bound > 0 && !res.IsCacheHit() {
			s.live.want()
		}
	}
	vs, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("keyring version", err)
	}
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return 0, unavailable("keyring version", err)
	}
	return v, nil
}

// LoadKeyring implements [store.KeyStore]. The keyring is a hash
// "<prefix>{keyring}" with fields v (version) and b (blob).
func (s *Store) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	vals, err := s.client.Do(ctx, s.client.B().Hmget().Key(s.keyringKey()).Field("v", "b").Build()).ToArray()
	if err != nil {
		return nil, 0, unavailable("load keyring", err)
	}
	if len(vals) != 2 || vals[0].IsNil() {
		return nil, 0, nil
	}
	vs, err1 := vals[0].ToString()
	blob, err2 := vals[1].AsBytes()
	v, err3 := strconv.ParseUint(vs, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, 0, unavailable("load keyring", err)
	}
	return blob, v, nil
}

// SaveKeyring implements [store.KeyStore] with a compare-and-swap script.
func (s *Store) SaveKeyring(ctx context.Context, blob []byte, expect uint64) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	s.keyringWritten.Store(monoNow() + int64(writeGuard))
	defer func() { s.keyringWritten.Store(monoNow() + int64(writeGuard)) }()
	ok, err := saveKeyringScript.Exec(ctx, s.client, []string{s.keyringKey()},
		[]string{strconv.FormatUint(expect, 10), strconv.FormatUint(expect+1, 10), string(blob)}).AsInt64()
	if err != nil {
		return unavailable("save keyring", err)
	}
	if ok != 1 {
		return store.ErrConflict
	}
	return nil
}
