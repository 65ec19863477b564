package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/redis/rueidis"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
)

// opTimeout is the per-call timeout of the outage tests.
const opTimeout = 300 * time.Millisecond

// failBound is how long an operation against a dead or hung server may take
// before it fails: the timeout plus generous slack for a loaded machine.
const failBound = opTimeout + 2*time.Second

// checkFailsClosed runs every operation and requires each to fail with
// ErrUnavailable within failBound.
func checkFailsClosed(t *testing.T, s *tracked, id store.ID, subject string) {
	t.Helper()
	ctx := context.Background() // no deadline: the store's own timeout must bound the call
	now := time.Now()
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, id); return err }},
		{"Create", func() error { _, err := s.Create(ctx, newRecord(t, subject, now), 10); return err }},
		{"Update", func() error { r := newRecord(t, subject, now); r.ID = id; r.Version = 1; return s.Update(ctx, r) }},
		{"RotateRefresh", func() error { _, err := s.RotateRefresh(ctx, store.Rotation{ID: id}); return err }},
		{"Revoke", func() error { return s.Revoke(ctx, id, store.ReasonLogout, now) }},
		{"RevokeSubject", func() error { _, err := s.RevokeSubject(ctx, subject, store.ID{}, store.ReasonAdmin, now); return err }},
		{"List", func() error { _, err := s.List(ctx, subject, now); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"LoadKeyring", func() error { _, _, err := s.LoadKeyring(ctx); return err }},
		{"SaveKeyring", func() error { return s.SaveKeyring(ctx, []byte("k"), 0) }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.fn()
		d := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis down: %v, want ErrUnavailable", op.name, err)
		}
		if d > failBound {
			t.Errorf("%s with Redis down took %v, want at most %v", op.name, d, failBound)
		}
		t.Logf("%s failed closed after %v", op.name, d.Round(time.Millisecond))
	}
}

// waitRecovered polls Ping until it succeeds and returns how long it took.
func waitRecovered(t *testing.T, s *tracked) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if err := s.Ping(context.Background()); err == nil {
			return time.Since(start)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("store did not recover within 20s of Redis returning")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOutageKillRestart kills Redis (-9) during use: every operation fails
// closed with ErrUnavailable within a bounded time, even a Get whose record
// was cached; after a restart on the same port the store recovers by itself.
func TestOutageKillRestart(t *testing.T) {
	srv := testredis.StartServer(t)
	s := openURL(t, "redis://"+srv.Addr(), func(o *Options) { o.Timeout = opTimeout })
	ctx := t.Context()
	sub := "outage-" + rand.Text()[:6]
	r := newRecord(t, sub, time.Now())
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(writeGuard) // let Get use the cache again
	for range 3 {
		if _, err := s.Get(ctx, r.ID); err != nil { // cached now
			t.Fatal(err)
		}
	}

	srv.Kill()
	killed := time.Now()
	// The first Get after the kill must not be served from a cache whose
	// invalidation channel is gone.
	served := 0
	for {
		_, err := s.Get(ctx, r.ID)
		if errors.Is(err, store.ErrUnavailable) {
			break
		}
		served++
		if err != nil {
			t.Fatalf("Get with Redis killed: %v, want ErrUnavailable", err)
		}
		if time.Since(killed) > failBound {
			t.Fatalf("Get still served the cached record %v after Redis was killed", time.Since(killed))
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("Get after kill -9 failed closed %v after the kill (%d Gets served from the cache before)",
		time.Since(killed).Round(time.Microsecond), served)
	checkFailsClosed(t, s, r.ID, sub)

	srv.Restart()
	t.Logf("recovered %v after the restart", waitRecovered(t, s).Round(time.Millisecond))
	// The server restarted empty (no persistence).
	if _, err := s.Get(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after restart of an empty server: %v, want ErrNotFound", err)
	}
	r2 := newRecord(t, sub, time.Now())
	if _, err := s.Create(ctx, r2, 10); err != nil {
		t.Fatalf("Create after recovery: %v", err)
	}
	if got, err := s.Get(ctx, r2.ID); err != nil || got.ID != r2.ID {
		t.Fatalf("Get after recovery: %v", err)
	}
	if err := s.Revoke(ctx, r2.ID, store.ReasonLogout, time.Now()); err != nil {
		t.Fatalf("Revoke after recovery (scripts reloaded): %v", err)
	}
}

// TestOutageHung pauses Redis (SIGSTOP): connections stay up but nothing
// answers, so only the timeouts can bound the calls.
func TestOutageHung(t *testing.T) {
	srv := testredis.StartServer(t)
	s := openURL(t, "redis://"+srv.Addr(), func(o *Options) { o.Timeout = opTimeout; o.DisableCache = true })
	ctx := t.Context()
	sub := "hung-" + rand.Text()[:6]
	r := newRecord(t, sub, time.Now())
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	checkFailsClosed(t, s, r.ID, sub)
	srv.Resume()
	resumed = true
	t.Logf("recovered %v after SIGCONT", waitRecovered(t, s).Round(time.Millisecond))
	if got, err := s.Get(ctx, r.ID); err != nil || got.ID != r.ID {
		t.Fatalf("Get after recovery: %v", err)
	}
}

// TestMemoryPerSession measures MEMORY USAGE of a session's keys with empty
// data, with the default key prefix, on a private server. The target is 400
// bytes. Figures depend on the allocator's size classes (jemalloc here):
// the record is a string of ~180 bytes + subject, IP, user agent, data.
func TestMemoryPerSession(t *testing.T) {
	srv := testredis.StartServer(t)
	s := openURL(t, "redis://"+srv.Addr(), func(o *Options) { o.Prefix = DefaultPrefix })
	ctx := t.Context()
	c := s.client
	usage := func(key string) int64 {
		n, err := c.Do(ctx, c.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
		if err != nil {
			t.Fatalf("MEMORY USAGE: %v", err)
		}
		return n
	}
	now := time.Now()
	measure := func(name string, perSubject int, mod func(*store.Record)) int64 {
		sub := fmt.Sprintf("user-%06d", time.Now().UnixNano()%1e6) // 11 bytes
		var rec, idx int64
		for i := range perSubject {
			r := newRecord(t, sub, now.Add(time.Duration(i)))
			mod(r)
			if _, err := s.Create(ctx, r, 0); err != nil {
				t.Fatal(err)
			}
			rec += usage(s.recordKey(r.ID))
		}
		idx = usage(s.indexKey(sub))
		per := (rec + idx) / int64(perSubject)
		t.Logf("%-58s record %3d B + index %3d B = %3d B per session", name,
			rec/int64(perSubject), idx/int64(perSubject), per)
		return per
	}
	minimal := measure("empty data, IP, UA; subject's only session", 1, func(r *store.Record) {})
	amortized := measure("empty data, IP, UA; 10 sessions per subject", 10, func(r *store.Record) {})
	measure("empty data; IP 203.0.113.195, 68-byte UA; only session", 1, func(r *store.Record) {
		r.IP = "203.0.113.195"
		r.UserAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128"
	})
	measure("empty data; IP, 68-byte UA, rotated once; 10 per subject", 10, func(r *store.Record) {
		r.IP = "203.0.113.195"
		r.UserAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128"
		r.Refresh.Previous[0] = 1
		r.Refresh.RotatedAt = now
		r.Refresh.Generation = 1
	})
	if minimal > 400 {
		t.Errorf("memory per session with empty data, IP and user agent: %d bytes, target 400", minimal)
	}
	if amortized > 400 {
		t.Errorf("memory per session with empty data, 10 sessions per subject: %d bytes, target 400", amortized)
	}
}

// revocationDelay creates sessions through a, has b cache each, revokes
// through a and polls b until it sees the revocation. It returns the
// delays from the end of Revoke to b's first revoked Get.
func revocationDelay(t *testing.T, a, b *tracked, rounds int) []time.Duration {
	t.Helper()
	ctx := t.Context()
	sub := "xrev-" + rand.Text()[:6]
	var delays []time.Duration
	for i := range rounds {
		r := newRecord(t, sub, time.Now())
		if _, err := a.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			got, err := b.Get(ctx, r.ID)
			if err != nil || got.Revoked() {
				t.Fatalf("Get through B before revoke: %v", err)
			}
		}
		// Prove B serves the record from its local cache.
		key := b.recordKey(r.ID)
		if res := b.client.DoCache(ctx, b.client.B().Get().Key(key).Cache(), b.ttl); !res.IsCacheHit() {
			t.Fatalf("round %d: B did not serve the record from its cache", i)
		}
		if err := a.Revoke(ctx, r.ID, store.ReasonAdmin, time.Now()); err != nil {
			t.Fatal(err)
		}
		done := time.Now()
		for {
			got, err := b.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revoked() {
				delays = append(delays, time.Since(done))
				break
			}
			if time.Since(done) > 5*time.Second {
				t.Fatalf("round %d: B still saw the session live 5s after A revoked it", i)
			}
			// Poll without hogging a core that Redis and the clients'
			// readers need (the machine may have only two).
			time.Sleep(100 * time.Microsecond)
		}
	}
	return delays
}

func testCrossClient(t *testing.T, url string) {
	a := openURL(t, url)
	b := openURL(t, url, func(o *Options) { o.Prefix = a.prefix })
	d := revocationDelay(t, a, b, 200)
	slices.Sort(d)
	p50, p99, max := d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	p90 := d[len(d)*9/10]
	t.Logf("revocation through A seen by B's next Get after: p50 %v, p90 %v, p99 %v, max %v (%d rounds, polled every 100µs)",
		p50, p90, p99, max, len(d))
	// The target is 50ms. On a machine whose cores are shared with other
	// work the scheduler alone can delay a round by tens of milliseconds,
	// so the bound is asserted on the 90th percentile; max only has to
	// stay within a second.
	if p90 >= 50*time.Millisecond {
		t.Errorf("90th percentile of the revocation delay is %v, want < 50ms", p90)
	}
	if max >= time.Second {
		t.Errorf("a revocation took %v to reach the other client", max)
	}
}

// TestCrossClientRevocation: two independent clients (as two latch
// replicas) on one Redis; a revocation through A invalidates B's cache.
func TestCrossClientRevocation(t *testing.T) {
	testCrossClient(t, "redis://"+testredis.Addr(t))
}

func TestCrossClientRevocationCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	testCrossClient(t, clusterURL(t))
}

// TestRevokeSubject10k measures revoke-all of a subject with 10,000
// sessions (target: 100 ms). The bound asserted is looser, for loaded
// machines; the figure is logged.
func TestRevokeSubject10k(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000 sessions")
	}
	// A private server, so the slow log can time the script itself.
	srv := testredis.StartServer(t, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "16")
	s := openURL(t, "redis://"+srv.Addr(), func(o *Options) { o.Timeout = 10 * time.Second })
	sub := "big-" + rand.Text()[:6]
	ids := loadSubject(t, s, sub, 10000)
	ctx := t.Context()
	c := s.client
	if err := c.Do(ctx, c.B().SlowlogReset().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	cpu0 := serverCPU(t, s)
	start := time.Now()
	got, err := s.RevokeSubject(ctx, sub, store.ID{}, store.ReasonRevokeAll, time.Now())
	d := time.Since(start)
	cpu := serverCPU(t, s) - cpu0
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) {
		t.Fatalf("RevokeSubject revoked %d sessions, want %d", len(got), len(ids))
	}
	var server time.Duration
	if entries, err := c.Do(ctx, c.B().SlowlogGet().Build()).ToArray(); err == nil {
		for _, e := range entries {
			f, _ := e.ToArray()
			if len(f) > 3 {
				if args, _ := f[3].AsStrSlice(); len(args) > 0 && strings.HasPrefix(strings.ToLower(args[0]), "eval") {
					us, _ := f[2].AsInt64()
					server = time.Duration(us) * time.Microsecond
				}
			}
		}
	}
	t.Logf("RevokeSubject of 10,000 sessions: %v end to end, %v in Redis (slow log), %v of Redis CPU (target 100ms)",
		d.Round(100*time.Microsecond), server, cpu.Round(100*time.Microsecond))
	// Wall-clock time on a machine shared with other work says little, so
	// the assertions are loose; the figures above are what to report.
	if d > 5*time.Second || cpu > time.Second {
		t.Errorf("RevokeSubject of 10,000 sessions took %v (%v of Redis CPU); target 100ms", d, cpu)
	}
	if rs, err := s.List(t.Context(), sub, time.Now()); err != nil || len(rs) != 0 {
		t.Errorf("List after RevokeSubject: %d sessions, %v", len(rs), err)
	}
}

// loadSubject creates n sessions of subject through Create, 64 at a time.
func loadSubject(tb testing.TB, s *tracked, subject string, n int) []store.ID {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	recs := make([]*store.Record, n)
	for i := range recs {
		recs[i] = newRecord(tb, subject, now.Add(time.Duration(i)*time.Microsecond))
	}
	errs := make(chan error, 64)
	next := make(chan *store.Record)
	for range 64 {
		go func() {
			var err error
			for r := range next {
				if err == nil {
					_, err = s.Create(ctx, r, 0)
				}
			}
			errs <- err
		}()
	}
	for _, r := range recs {
		next <- r
	}
	close(next)
	for range 64 {
		if err := <-errs; err != nil {
			tb.Fatalf("load: %v", err)
		}
	}
	ids := make([]store.ID, n)
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

// serverCPU returns the CPU time (user+system) the Redis server has used,
// which unlike wall-clock time does not grow when other processes compete
// for the machine's cores.
func serverCPU(t testing.TB, s *tracked) time.Duration {
	t.Helper()
	c := s.client
	info, err := c.Do(context.Background(), c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			var f float64
			fmt.Sscan(v, &f)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// TestCachedGetReusesDecoded: repeated cached Gets return the record decoded
// once, and a write through another client (an invalidation) yields a fresh
// decoding, never the stale one.
func TestCachedGetReusesDecoded(t *testing.T) {
	a := standalone(t)
	b := openURL(t, "redis://"+testredis.Addr(t), func(o *Options) { o.Prefix = a.prefix })
	ctx := t.Context()
	r := newRecord(t, "reuse-"+rand.Text()[:6], time.Now())
	if _, err := a.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	first, err := b.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var again *store.Record
	for range 3 {
		if again, err = b.Get(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if again != first {
		t.Log("the first cached reply was not the cached bytes; checking the next ones")
		first, _ = b.Get(ctx, r.ID)
		if again, _ = b.Get(ctx, r.ID); again != first {
			t.Error("cached Gets of an unchanged record decoded it again")
		}
	}
	if err := a.Revoke(ctx, r.ID, store.ReasonAdmin, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revoked() {
			if got == first || first.Revoked() {
				t.Error("the revoked record is the cached live one")
			}
			break
		}
		if got != first && !got.Revoked() {
			t.Error("a live record was decoded again although the key did not change")
		}
		if time.Now().After(deadline) {
			t.Fatal("B never saw the revocation")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestUncachedGetMemo: with caching off, Gets of an unchanged record return
// the record decoded once, while every change reaches the next Get: an
// update and a revocation through another store, and a value corrupted in
// Redis, which fails closed although a good decoding of that ID is
// remembered.
func TestUncachedGetMemo(t *testing.T) {
	a := standalone(t)
	b := openURL(t, "redis://"+testredis.Addr(t), func(o *Options) { o.Prefix = a.prefix; o.DisableCache = true })
	ctx := t.Context()
	r := newRecord(t, "memo-"+rand.Text()[:6], time.Now())
	if _, err := a.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	get := func() *store.Record {
		t.Helper()
		got, err := b.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := get()
	if get() != first || get() != first {
		t.Error("Gets of an unchanged record decoded it again")
	}

	next := first.Clone()
	next.Data = []byte(`{"n":1}`)
	if err := a.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := get(); got == first || string(got.Data) != `{"n":1}` || got.Version != first.Version+1 {
		t.Fatalf("Get after an update through another store: %+v", got)
	}
	if err := a.Revoke(ctx, r.ID, store.ReasonAdmin, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := get()
	if !revoked.Revoked() {
		t.Fatal("Get after a revocation through another store returned a live record")
	}

	// One byte changed in Redis, the seal no longer matches: unavailable,
	// never the remembered record.
	c := b.client
	key := b.recordKey(r.ID)
	v, err := c.Do(ctx, c.B().Get().Key(key).Build()).AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	v[len(v)/2] ^= 1
	if err := c.Do(ctx, c.B().Set().Key(key).Value(string(v)).Keepttl().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, r.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get of a corrupted value: %v, %v; want ErrUnavailable", got, err)
	}
}

// TestNewClientNoPinnedReuse: on a client handed to New, which may be
// rueidis's standalone client with redirects (it recycles even pinned
// commands after a call), concurrent Gets of many records with and
// without caching each return their own record: the store never sends a
// command it kept.
func TestNewClientNoPinnedReuse(t *testing.T) {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{testredis.Addr(t)},
		Standalone:  rueidis.StandaloneOption{EnableRedirect: true},
	})
	if err != nil && strings.Contains(err.Error(), "CAPA") {
		t.Skipf("rueidis's redirecting standalone client needs Redis 8 or later (CLIENT CAPA redirect): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seed := standalone(t)
	ids := loadSubjects(t, seed, 200, 10)
	for _, cache := range []bool{false, true} {
		s, err := New(c, Options{Prefix: seed.prefix, DisableCache: !cache})
		if err != nil {
			t.Fatal(err)
		}
		if cache {
			time.Sleep(writeGuard)
		}
		var wg sync.WaitGroup
		var bad atomic.Int64
		for g := range 16 {
			wg.Go(func() {
				for i := range 2000 {
					id := ids[(g*31+i)%len(ids)]
					r, err := s.Get(t.Context(), id)
					if err != nil || r.ID != id {
						bad.Add(1)
					}
				}
			})
		}
		wg.Wait()
		s.Close()
		if n := bad.Load(); n > 0 {
			t.Errorf("cache %v: %d of 32,000 Gets failed or returned another record", cache, n)
		}
	}
}

// TestPinOnlyOnOwnClient: the store keeps pinned commands only on a client
// Open made (see Store.pin).
func TestPinOnlyOnOwnClient(t *testing.T) {
	own := standalone(t)
	if !own.pin {
		t.Error("a store made by Open does not pin its GETs")
	}
	s, err := New(own.client, Options{Prefix: own.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.pin {
		t.Error("a store on a client handed to New pins its GETs")
	}
}
