package redisstore

import (
	"context"

	"github.com/latch-sessions/latch/store"
	"github.com/redis/rueidis"
)

// memo remembers, per slot (a hash of the ID), the record last read past
// the client-side cache (GetFresh, and every Get with caching off), with
// the value it was decoded from and the GET that read it. A read whose
// reply is byte for byte that value returns the same record: a record is
// a function of its ID and value alone, and records are shared and
// read-only (store's contract), so this is the record decoding would
// return, without the decoding, its seal check and its allocation. Every
// read still goes to Redis: the memo saves CPU, it never answers for
// Redis, and a record that changed in any byte (a touch, a revocation) is
// decoded afresh.
//
// Decoding allocated the 576-byte record on every read, which on a busy
// replica was most of what an uncached read cost beyond rueidis's own
// GET (the garbage collector's cycles, not the allocation itself).
type memo struct {
	id store.ID
	// cmd is the GET of the record key, pinned so that rueidis does not
	// recycle it: a read of a remembered ID builds no command and no key.
	// Unused (and not pinned) without Store.pin.
	cmd rueidis.Completed
	raw string // the reply's value, which nothing else refers to
	rec *store.Record
}

// memoSlots is the size of the memo for a Store whose client-side cache
// would hold cacheSize bytes per connection: a quarter of the decoded-record
// cache's slots (Options.CacheSize), 256 to 16,384. Each remembered record
// holds about 800 bytes.
func memoSlots(cacheSize int) int { return max(decodedSlots(cacheSize)/4, 256) }

// readFresh reads id's record past the client-side cache: one GET.
func (s *Store) readFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	slot := &s.memo[decodedSlot(id, len(s.memo))]
	m := slot.Load()
	var cmd rueidis.Completed
	switch {
	case !s.pin: // see Store.pin
		cmd = s.client.B().Get().Key(s.recordKey(id)).Build()
	case m != nil && m.id == id:
		cmd = m.cmd
	default:
		cmd = s.client.B().Get().Key(s.recordKey(id)).Build().Pin()
	}
	v, err := s.client.Do(s.bound(ctx), cmd).ToString()
	if err != nil {
		return s.decodeReply(id, v, err)
	}
	if m != nil && m.id == id && m.raw == v {
		return m.rec, nil
	}
	r, err := s.decodeReply(id, v, nil)
	if err == nil {
		slot.Store(&memo{id: id, cmd: cmd, raw: v, rec: r})
	}
	return r, err
}
