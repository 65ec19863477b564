package boltstore

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

// DefaultCacheBytes is the budget of the decoded-record cache when
// [Options.CacheBytes] is zero.
const DefaultCacheBytes = 16 << 20

// recordCache keeps the records Get decoded, so that validating a session
// again reads no transaction (a bbolt read transaction and the decode were
// the largest part of a verify's store time: BENCHMARKS.md, issue 15).
//
// It is exact, not eventually consistent: bbolt locks its file to one
// process, so every write of the records bucket goes through this Store,
// and each committed write of a record drops that record from the cache
// (drop, from the transaction's commit hook) before the write returns to
// its caller. A Get that read a record before a write committed could
// still insert the old copy after the write dropped it; so an insert is
// refused unless no drop happened since that Get began (seq).
//
// Records are shared and read-only, as the store contract says of every
// record a store returns. The zero value is a disabled cache.
type recordCache struct {
	mu    sync.RWMutex
	m     map[store.ID]cachedRecord
	seq   uint64 // drops so far
	size  int    // bytes held, estimated
	limit int    // 0: disabled
}

type cachedRecord struct {
	rec  *store.Record
	size int
}

// noCache is a disabled cache.
var noCache = newRecordCache(-1)

func newRecordCache(limit int) *recordCache {
	if limit <= 0 {
		return &recordCache{}
	}
	return &recordCache{m: map[store.ID]cachedRecord{}, limit: limit}
}

// get returns the cached record of id, or nil.
func (c *recordCache) get(id store.ID) *store.Record {
	if c.limit == 0 {
		return nil
	}
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	return e.rec
}

// begin returns the drop count to pass to put: read it before the read
// transaction starts.
func (c *recordCache) begin() uint64 {
	if c.limit == 0 {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

// put caches rec, read by a transaction that began after begin returned
// seq, unless a record was dropped since (the read may predate that
// write). When full, it first evicts entries at random.
func (c *recordCache) put(rec *store.Record, seq uint64) {
	if c.limit == 0 {
		return
	}
	n := recordSize(rec)
	if n > c.limit/16 {
		return // one large record must not empty the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq != seq {
		return
	}
	if old, ok := c.m[rec.ID]; ok {
		c.size -= old.size
	}
	for id, e := range c.m {
		if c.size+n <= c.limit {
			break
		}
		delete(c.m, id)
		c.size -= e.size
	}
	c.m[rec.ID] = cachedRecord{rec, n}
	c.size += n
}

// drop removes id: its record was just written.
func (c *recordCache) drop(id store.ID) {
	if c.limit == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if e, ok := c.m[id]; ok {
		delete(c.m, id)
		c.size -= e.size
	}
}

// dropOnCommit drops id from the cache once tx, which writes its record,
// has committed (before the write returns to its caller). A transaction
// rolled back changed nothing.
func (c *recordCache) dropOnCommit(tx *bolt.Tx, id store.ID) {
	if c.limit == 0 {
		return
	}
	tx.OnCommit(func() { c.drop(id) })
}

// recordSize estimates the memory a decoded record holds.
func recordSize(r *store.Record) int {
	n := 512 + len(r.Subject) + len(r.Data) + len(r.Claims) + len(r.IP) + len(r.UserAgent) + len(r.ACR) + len(r.RevokeReason)
	for _, s := range r.AMR {
		n += 16 + len(s)
	}
	return n
}
