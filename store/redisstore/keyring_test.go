package redisstore

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
)

// KeyringVersion follows saves by this store at once and by another
// client (another replica) as soon as Redis's invalidation arrives.
func TestKeyringVersion(t *testing.T) {
	ctx := context.Background()
	a := standalone(t)
	b, err := Open(ctx, "redis://"+testredis.Addr(t), func(o *Options) { o.Prefix = a.Store.prefix })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Cleanup(func() { a.Store.client.Do(ctx, a.Store.client.B().Del().Key(a.Store.keyringKey()).Build()) })
	if v, err := a.KeyringVersion(ctx); err != nil || v != 0 {
		t.Fatalf("no keyring: %d, %v", v, err)
	}
	if err := a.SaveKeyring(ctx, []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a.Store, b} {
		waitLive(t, s)
		if v, err := s.KeyringVersion(ctx); err != nil || v != 1 {
			t.Fatalf("after the first save: %d, %v", v, err)
		}
	}
	if err := b.SaveKeyring(ctx, []byte("two"), 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		v, err := a.KeyringVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another client's save was not seen within 1s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkKeyringVersion: what online verification pays to notice a
// revoked key, per verification: a cached version read, against an
// uncached one (a round trip) and a load of the whole keyring.
//
//	go test -run '^$' -bench KeyringVersion -count 6 ./store/redisstore/
func BenchmarkKeyringVersion(b *testing.B) {
	ctx := context.Background()
	s := standalone(b)
	b.Cleanup(func() { s.Store.client.Do(ctx, s.Store.client.B().Del().Key(s.Store.keyringKey()).Build()) })
	if err := s.SaveKeyring(ctx, bytes.Repeat([]byte("k"), 4096), 0); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.KeyringVersion(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Store.client.Do(ctx, s.Store.client.B().Hget().Key(s.Store.keyringKey()).Field("v").Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.LoadKeyring(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
