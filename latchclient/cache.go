package latchclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"
)

// cache is the cached-validation state: entries by token hash, indexes for
// invalidation, and the liveness of the event stream.
type cache struct {
	bound   time.Duration
	max     int
	onEvent func(Event)
	revs    *revocations

	// heard is the time (UnixNano) the replica's link to the store was last
	// proven, by the newest heartbeat: its arrival less the age it carries;
	// 0 while the stream is down.
	heard atomic.Int64

	mu        sync.Mutex
	gen       uint64 // bumped on every (dis)connection, staleness and reset
	evSeq     uint64 // bumped on every event that invalidates anything
	entries   map[[32]byte]*entry
	bySession map[string]map[[32]byte]struct{}
	bySubject map[string]map[string]struct{} // subject -> session IDs

	hits, misses atomic.Uint64
}

type entry struct {
	v     Verified
	until time.Time
}

func newCache(bound time.Duration, max int, onEvent func(Event)) *cache {
	return &cache{bound: bound, max: max, onEvent: onEvent,
		entries: map[[32]byte]*entry{}, bySession: map[string]map[[32]byte]struct{}{}, bySubject: map[string]map[string]struct{}{}}
}

// live reports whether the stream showed life within the bound.
func (c *cache) live(now time.Time) bool {
	h := c.heard.Load()
	return h != 0 && now.Sub(time.Unix(0, h)) <= c.bound
}

// state returns the generation and event sequence, dropping everything
// first if the stream went stale: the cache is cleared the moment that is
// noticed.
func (c *cache) state(now time.Time) (gen, seq uint64, live bool) {
	live = c.live(now)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !live && len(c.entries) > 0 {
		c.clearLocked()
	}
	return c.gen, c.evSeq, live
}

func (c *cache) verify(ctx context.Context, tok string, online func(context.Context, string) (*Verified, time.Duration, error)) (*Verified, error) {
	key := sha256.Sum256([]byte(tok))
	now := time.Now()
	gen, seq, live := c.state(now)
	if live {
		c.mu.Lock()
		e := c.entries[key]
		if e != nil && !now.Before(e.until) {
			c.removeLocked(key, e)
			e = nil
		}
		c.mu.Unlock()
		if e != nil {
			c.hits.Add(1)
			v := e.v
			v.Cached = true
			v.CSRFToken = mask(v.csrfKey)
			return &v, nil
		}
	}
	c.misses.Add(1)
	v, age, err := online(ctx, tok)
	if err != nil || age <= 0 || !live {
		return v, err
	}
	now = time.Now()
	until := now.Add(age)
	for _, d := range []time.Time{v.Session.IdleExpiresAt, v.Session.ExpiresAt} {
		if !d.IsZero() && d.Before(until) {
			until = d
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Stored only if the stream stayed live on the same connection and no
	// invalidation arrived while the answer was on its way (it could be
	// about this very session, and would be lost on an entry stored after it).
	if c.live(now) && c.gen == gen && c.evSeq == seq && until.After(now) {
		if len(c.entries) >= c.max {
			for k, e := range c.entries { // drop one arbitrary entry
				c.removeLocked(k, e)
				break
			}
		}
		cp := *v
		c.entries[key] = &entry{v: cp, until: until}
		ids := c.bySession[v.Session.ID]
		if ids == nil {
			ids = map[[32]byte]struct{}{}
			c.bySession[v.Session.ID] = ids
		}
		ids[key] = struct{}{}
		subj := c.bySubject[v.Session.Subject]
		if subj == nil {
			subj = map[string]struct{}{}
			c.bySubject[v.Session.Subject] = subj
		}
		subj[v.Session.ID] = struct{}{}
	}
	return v, nil
}

func (c *cache) removeLocked(key [32]byte, e *entry) {
	delete(c.entries, key)
	sid, subj := e.v.Session.ID, e.v.Session.Subject
	if ids := c.bySession[sid]; ids != nil {
		delete(ids, key)
		if len(ids) == 0 {
			delete(c.bySession, sid)
			if s := c.bySubject[subj]; s != nil {
				delete(s, sid)
				if len(s) == 0 {
					delete(c.bySubject, subj)
				}
			}
		}
	}
}

func (c *cache) dropSessionLocked(sid string) {
	for key := range c.bySession[sid] {
		if e := c.entries[key]; e != nil {
			c.removeLocked(key, e)
		}
	}
}

func (c *cache) clearLocked() {
	clear(c.entries)
	clear(c.bySession)
	clear(c.bySubject)
	c.gen++
}

// connected and down mark the stream's (dis)connection: either way nothing
// cached so far may be trusted, nor the absence of a revocation of a token
// issued before.
func (c *cache) connected() {
	c.reset()
	c.revs.lost()
}

func (c *cache) down() {
	c.heard.Store(0)
	c.reset()
	c.revs.lost()
}

func (c *cache) reset() {
	c.mu.Lock()
	c.clearLocked()
	c.evSeq++
	c.mu.Unlock()
}

// proven records a heartbeat saying the replica's link to the store was
// proven age ago. Only heartbeats prove it: an event says nothing of what
// the replica may have missed since.
func (c *cache) proven(age time.Duration) {
	at := time.Now().Add(-age).UnixNano()
	for {
		old := c.heard.Load()
		if at <= old || c.heard.CompareAndSwap(old, at) {
			return
		}
	}
}

// apply acts on one event of the stream (docs/protocol.md section 3).
func (c *cache) apply(e Event) {
	c.mu.Lock()
	switch e.Type {
	case "session.revoked", "session.renewed", "session.refresh_reuse":
		c.evSeq++
		c.dropSessionLocked(e.SessionID)
	case "subject.revoked":
		c.evSeq++
		for sid := range c.bySubject[e.Subject] {
			if sid != e.Except {
				c.dropSessionLocked(sid)
			}
		}
	case "reset":
		c.evSeq++
		c.clearLocked()
	}
	c.mu.Unlock()
	c.revs.apply(e)
	if c.onEvent != nil {
		c.onEvent(e)
	}
}

// CacheStats counts cached-validation outcomes.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
	Live         bool // the event stream is live: the cache may serve
}

// CacheStats returns the cache's counters (zero without Config.Cache).
func (c *Client) CacheStats() CacheStats {
	if c.cache == nil {
		return CacheStats{}
	}
	c.cache.mu.Lock()
	n := len(c.cache.entries)
	c.cache.mu.Unlock()
	return CacheStats{Hits: c.cache.hits.Load(), Misses: c.cache.misses.Load(), Entries: n, Live: c.cache.live(time.Now())}
}

// CSRF tokens (docs/protocol.md section 2): base64url(m ‖ m⊕k).

func unmask(tok string) []byte {
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != 64 {
		return nil
	}
	k := make([]byte, 32)
	subtle.XORBytes(k, b[:32], b[32:])
	return k
}

func mask(k []byte) string {
	if len(k) != 32 {
		return ""
	}
	b := make([]byte, 64)
	rand.Read(b[:32])
	subtle.XORBytes(b[32:], b[:32], k)
	return base64.RawURLEncoding.EncodeToString(b)
}

func checkCSRF(k []byte, tok string) bool {
	got := unmask(tok)
	return len(k) == 32 && got != nil && subtle.ConstantTimeCompare(got, k) == 1
}
