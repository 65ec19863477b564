package redisstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

func TestConformanceStandalone(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return standalone(t) })
}

func TestConformanceStandaloneNoCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return standalone(t, func(o *Options) { o.DisableCache = true })
	})
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := clusterURL(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openURL(t, url) })
}

func TestValueRoundTrip(t *testing.T) {
	now := time.Now()
	for i, mod := range []func(r *store.Record){
		func(r *store.Record) {},
		func(r *store.Record) {
			r.AuthTime = now.Add(-time.Hour)
			r.Refresh.Previous[3] = 9
			r.Refresh.RotatedAt = now.Add(-time.Minute)
			r.Refresh.Generation = 1<<32 - 1
			r.RevokedAt = now.Add(time.Second)
			r.RevokeReason = "admin"
			r.IP = "2001:db8::1"
			r.UserAgent = strings.Repeat("u", 300)
			r.Data = []byte(`{"a":1}`)
			r.Claims = []byte(`{"role":"x"}`)
			r.Version = 1 << 40
		},
		func(r *store.Record) { r.AuthTime = time.Time{}; r.Data = bytes.Repeat([]byte("x"), store.MaxValueLen) },
		func(r *store.Record) { r.ACR = "urn:latch:acr:mfa" },
		func(r *store.Record) { r.AMR = []string{"pwd", "otp", "hwk"} },
		func(r *store.Record) { r.JKT[31] = 1 },
		func(r *store.Record) {
			r.ACR, r.AMR, r.Claims = strings.Repeat("a", store.MaxACRLen), []string{"pwd"}, []byte(`{"x":1}`)
			r.JKT[0] = 7
		},
	} {
		r := newRecord(t, "user-1", now)
		mod(r)
		v := encodeValue(nil, r, r.Version)
		got, err := decodeValue(r.ID, v)
		if err != nil {
			t.Fatalf("case %d: decode: %v", i, err)
		}
		a, _ := r.MarshalBinary()
		b, _ := got.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Errorf("case %d: round trip changed the record", i)
		}
		// The ACR/AMR/JKT extension is optional, so the value cut just
		// before it is a record without them; every other cut is refused.
		plain := r.Clone()
		plain.ACR, plain.AMR, plain.JKT = "", nil, [32]byte{}
		base := len(encodeValue(nil, plain, r.Version))
		for n := range v {
			if _, err := decodeValue(r.ID, v[:n]); err == nil && n != base {
				t.Fatalf("case %d: truncated value of %d bytes decoded", i, n)
			}
		}
		if base < len(v) {
			for _, tail := range [][]byte{{0}, {8}, {extACR, 0}, {extAMR, 1, ' '}, append([]byte{extJKT}, make([]byte, 32)...)} {
				if _, err := decodeValue(r.ID, append(bytes.Clone(v[:base]), tail...)); err == nil {
					t.Errorf("case %d: an extension encodeValue never writes (%x…) decoded", i, tail[:min(len(tail), 3)])
				}
			}
		}
	}
}

func TestMillis(t *testing.T) {
	for _, c := range []struct {
		t           time.Time
		ceil, floor int64
	}{
		{time.UnixMilli(1700000000123), 1700000000123, 1700000000123},
		{time.UnixMilli(1700000000123).Add(1), 1700000000124, 1700000000123},
		{time.UnixMilli(1700000000123).Add(999999), 1700000000124, 1700000000123},
		{time.Time{}, 1, 0},
	} {
		if got := ceilMillis(c.t); got != c.ceil {
			t.Errorf("ceilMillis(%v) = %d, want %d", c.t, got, c.ceil)
		}
		if got := floorMillis(c.t); got != c.floor {
			t.Errorf("floorMillis(%v) = %d, want %d", c.t, got, c.floor)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url    string
		kind   string
		addrs  string
		user   string
		pass   string
		db     int
		master string
		tls    bool
	}{
		{"redis://127.0.0.1:6379", "single", "127.0.0.1:6379", "", "", 0, "", false},
		{"redis://localhost/3", "single", "localhost:6379", "", "", 3, "", false},
		{"redis://u:p%40ss@h:1234/2", "single", "h:1234", "u", "p@ss", 2, "", false},
		{"redis://:secret@h", "single", "h:6379", "", "secret", 0, "", false},
		{"rediss://h:6380?db=4", "single", "h:6380", "", "", 4, "", true},
		{"redis://[::1]:7000", "single", "[::1]:7000", "", "", 0, "", false},
		{"redis-sentinel://s1,s2:5000/mymaster", "sentinel", "s1:26379,s2:5000", "", "", 0, "mymaster", false},
		{"redis-sentinel://u:p@s1:26379/mymaster/5", "sentinel", "s1:26379", "u", "p", 5, "mymaster", false},
		{"redis-sentinel://s1:26379?master=m&db=1", "sentinel", "s1:26379", "", "", 1, "m", false},
		{"redis-cluster://a:7000,b:7001,c", "cluster", "a:7000,b:7001,c:6379", "", "", 0, "", false},
		{"rediss-cluster://u:p@a:7000,b:7001", "cluster", "a:7000,b:7001", "u", "p", 0, "", true},
	} {
		var o Options
		tg, err := parseURL(c.url, &o)
		if err != nil {
			t.Errorf("parseURL(%q): %v", c.url, err)
			continue
		}
		if tg.kind != c.kind || strings.Join(tg.addrs, ",") != c.addrs || tg.username != c.user ||
			tg.password != c.pass || tg.db != c.db || tg.master != c.master || tg.tls != c.tls {
			t.Errorf("parseURL(%q) = %+v", c.url, *tg)
		}
	}
	var o Options
	if _, err := parseURL("redis://h?timeout=250ms&cache=false&cache_ttl=5s&cache_staleness=100ms&prefix=x:", &o); err != nil {
		t.Fatal(err)
	}
	if o.Timeout != 250*time.Millisecond || !o.DisableCache || o.CacheTTL != 5*time.Second || o.Prefix != "x:" ||
		o.CacheStaleness != 100*time.Millisecond {
		t.Errorf("query parameters not applied: %+v", o)
	}
	for _, bad := range []string{
		"http://h", "h:6379", "redis://a,b", "redis://h/x", "redis-sentinel://s1",
		"redis-cluster://a/2", "redis://h?nope=1", "redis://h:99999", "redis://h?timeout=x",
		"redis://u:topsecret@h#frag", "redis-cluster://a,,b", "redis://h?cache_staleness=-1s",
		"redis://h?cache_staleness=soon",
	} {
		_, err := parseURL(bad, &Options{})
		if err == nil {
			t.Errorf("parseURL(%q) succeeded", bad)
			continue
		}
		if !errors.Is(err, errURL) {
			t.Errorf("parseURL(%q): error %v does not match errURL", bad, err)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("parseURL error quotes the password: %v", err)
		}
	}
}

// TestCacheStalenessOption: the bound has a floor, and no URL can remove it.
func TestCacheStalenessOption(t *testing.T) {
	o := Options{}
	if err := o.fill(); err != nil || o.CacheStaleness != DefaultCacheStaleness {
		t.Fatalf("default CacheStaleness: %v, %v", o.CacheStaleness, err)
	}
	o = Options{CacheStaleness: MinCacheStaleness - 1}
	if err := o.fill(); err == nil {
		t.Error("CacheStaleness below MinCacheStaleness accepted")
	}
	if _, err := Open(t.Context(), "redis://127.0.0.1:1?cache_staleness=1ms"); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open with cache_staleness=1ms: %v, want a configuration error before connecting", err)
	}
}

func TestBadPrefix(t *testing.T) {
	if _, err := Open(t.Context(), "redis://127.0.0.1:1", func(o *Options) { o.Prefix = "a{b}" }); err == nil {
		t.Fatal("Open accepted a prefix with braces")
	}
}

// TestOpenUnreachable: connecting to nothing fails fast with ErrUnavailable.
func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Open(t.Context(), "redis://127.0.0.1:1")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open of a closed port: %v, want ErrUnavailable", err)
	}
	t.Logf("Open of a closed port failed after %v", time.Since(start))
}

// TestKeyLayout checks the documented keys, their slot sharing and TTLs.
func TestKeyLayout(t *testing.T) {
	s := standalone(t)
	ctx := t.Context()
	now := time.Now()
	r := newRecord(t, "layout-"+rand.Text()[:6], now)
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("{t:%04x}", r.ID.Tag())
	rk, ik := s.recordKey(r.ID), s.indexKey(r.Subject)
	if !strings.HasPrefix(rk, s.prefix+tag+":s:") || !strings.HasPrefix(ik, s.prefix+tag+":u:") {
		t.Fatalf("keys %q, %q do not follow the layout", rk, ik)
	}
	c := s.client
	pxat, err := c.Do(ctx, c.B().Pexpiretime().Key(rk).Build()).AsInt64()
	if err != nil || pxat != ceilMillis(r.Deadline()) {
		t.Errorf("record PEXPIRETIME = %d, %v; want the deadline %d", pxat, err, ceilMillis(r.Deadline()))
	}
	ipx, err := c.Do(ctx, c.B().Pexpiretime().Key(ik).Build()).AsInt64()
	if err != nil || ipx != pxat {
		t.Errorf("index PEXPIRETIME = %d, %v; want %d", ipx, err, pxat)
	}
	if err := s.Revoke(ctx, r.ID, store.ReasonLogout, now); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Do(ctx, c.B().Pexpiretime().Key(rk).Build()).AsInt64(); got != pxat {
		t.Errorf("tombstone PEXPIRETIME = %d, want the record's deadline %d", got, pxat)
	}
	if n, _ := c.Do(ctx, c.B().Exists().Key(ik).Build()).AsInt64(); n != 0 {
		t.Errorf("index of a subject whose only session was revoked still exists")
	}
}

// TestPruneOnWrite: index entries of records that vanished are dropped by
// the next write of the subject, without a List.
func TestPruneOnWrite(t *testing.T) {
	s := standalone(t)
	ctx := t.Context()
	now := time.Now()
	sub := "prune-" + rand.Text()[:6]
	var ids []store.ID
	for i := range 5 {
		r := newRecord(t, sub, now.Add(time.Duration(i)*time.Millisecond))
		r.LastSeenAt = r.CreatedAt
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	c := s.client
	// Records disappear behind the store's back (eviction, expiry).
	for _, id := range ids[:3] {
		c.Do(ctx, c.B().Del().Key(s.recordKey(id)).Build())
	}
	r := newRecord(t, sub, now.Add(time.Second))
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	n, err := c.Do(ctx, c.B().Zcard().Key(s.indexKey(sub)).Build()).AsInt64()
	if err != nil || n != 3 {
		t.Errorf("index holds %d entries after a write, want 3 (dead ones pruned): %v", n, err)
	}
}

// TestEvictionAtomicUnderContention: many concurrent creates with a limit
// never leave more than max live sessions.
func TestEvictionUnderContention(t *testing.T) {
	s := standalone(t)
	ctx := t.Context()
	now := time.Now()
	sub := "evict-" + rand.Text()[:6]
	const max, n = 5, 60
	errs := make(chan error, n)
	for i := range n {
		go func() {
			r := newRecord(t, sub, now.Add(time.Duration(i)*time.Microsecond))
			_, err := s.Create(ctx, r, max)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.List(ctx, sub, now.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != max {
		t.Errorf("List returned %d live sessions, want %d", len(rs), max)
	}
}

// TestReadYourWrites: a Get right after a write on the same Store never
// returns the pre-write record from the cache.
func TestReadYourWrites(t *testing.T) {
	s := standalone(t)
	ctx := t.Context()
	now := time.Now()
	sub := "ryw-" + rand.Text()[:6]
	for i := range 200 {
		r := newRecord(t, sub, now)
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, r.ID); err != nil { // now cached
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, r.ID, store.ReasonLogout, now); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Revoked() {
			t.Fatalf("iteration %d: Get after Revoke on the same store returned a live record", i)
		}
	}
}

func TestDecodedSlots(t *testing.T) {
	for _, c := range []struct{ size, want int }{{0, 256}, {1 << 10, 256}, {DefaultCacheSize, 32768}, {1 << 30, 1 << 16}} {
		if got := decodedSlots(c.size); got != c.want {
			t.Errorf("decodedSlots(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}
