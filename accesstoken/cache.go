package accesstoken

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// cache remembers verified tokens by the SHA-256 of the whole token (the
// token itself is never kept), with their claims and the key that verified
// them. A hit is honoured only while the token has not expired and its key
// is still the one the key set returns for its kid, so removing or
// replacing a key takes effect on cached tokens at once. Revocation is
// honoured by running the online hook on every hit.
type cache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

const cacheShards = 16

type cacheShard struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	claims Claims
	key    *Key
}

func newCache(size int) *cache {
	c := &cache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

func (c *cache) shard(sum *[sha256.Size]byte) *cacheShard {
	return &c.shards[sum[0]%cacheShards]
}

func (c *cache) get(ctx context.Context, sum *[sha256.Size]byte, v *Verifier) (Claims, bool) {
	sh := c.shard(sum)
	sh.mu.Lock()
	e, ok := sh.m[*sum]
	sh.mu.Unlock()
	if !ok {
		return Claims{}, false
	}
	if !v.now().Before(e.claims.ExpiresAt) {
		c.drop(sum)
		return Claims{}, false
	}
	if k, err := v.keys.VerificationKey(ctx, e.key.kid); err != nil || k != e.key {
		c.drop(sum)
		return Claims{}, false
	}
	return e.claims, true
}

func (c *cache) drop(sum *[sha256.Size]byte) {
	sh := c.shard(sum)
	sh.mu.Lock()
	delete(sh.m, *sum)
	sh.mu.Unlock()
}

func (c *cache) put(sum *[sha256.Size]byte, cl Claims, k *Key, now time.Time) {
	sh := c.shard(sum)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= c.perShard {
		// Evict expired entries, or else an arbitrary one (map iteration
		// order is randomized), looking at a few entries at most.
		n := 0
		for s, e := range sh.m {
			if !now.Before(e.claims.ExpiresAt) {
				delete(sh.m, s)
			}
			if n++; n == 8 {
				break
			}
		}
		if len(sh.m) >= c.perShard {
			for s := range sh.m {
				delete(sh.m, s)
				break
			}
		}
	}
	sh.m[*sum] = cacheEntry{claims: cl, key: k}
}
