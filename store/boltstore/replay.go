package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/latch-sessions/latch/store"
)

var _ store.ReplayCache = (*Store)(nil)

// bucketReplay holds the replay cache: "k"+key → until (sortable), and
// "u"+until+key → present, the expiry order. It is created on first use, so
// files written before it existed open unchanged.
var bucketReplay = []byte("replay")

// replayPrune bounds how many passed entries one Seen deletes: sweeping is
// spread over the writes, so the bucket stays proportional to the entries
// within their window without a separate sweep.
const replayPrune = 16

// Seen implements [store.ReplayCache] in one write transaction, so it
// survives a restart (a proof cannot be replayed by restarting latch).
func (s *Store) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := store.ValidReplayKey(key); err != nil {
		return false, err
	}
	var fresh bool
	err := s.write(ctx, "replay", func(tx *bolt.Tx) error {
		fresh = false
		b, err := tx.CreateBucketIfNotExists(bucketReplay)
		if err != nil {
			return err
		}
		now := sortableTime(time.Now())
		c := b.Cursor()
		n := 0
		for k, _ := c.Seek([]byte("u")); k != nil && k[0] == 'u' && n < replayPrune; k, _ = c.Seek([]byte("u")) {
			if len(k) < 9 || binary.BigEndian.Uint64(k[1:9]) > now {
				break
			}
			if err := b.Delete(bytes.Clone(k)); err != nil {
				return err
			}
			if err := b.Delete(append([]byte("k"), k[9:]...)); err != nil {
				return err
			}
			n++
		}
		kk := append([]byte("k"), key...)
		if old := b.Get(kk); len(old) == 8 && binary.BigEndian.Uint64(old) > now {
			return nil
		} else if old != nil {
			if err := b.Delete(append(append([]byte("u"), old...), key...)); err != nil {
				return err
			}
		}
		fresh = true
		u := binary.BigEndian.AppendUint64(nil, sortableTime(until))
		if err := b.Put(kk, u); err != nil {
			return err
		}
		return b.Put(append(append([]byte("u"), u...), key...), present)
	})
	if err != nil {
		return false, err
	}
	return fresh, nil
}
