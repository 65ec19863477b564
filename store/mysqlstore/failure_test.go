package mysqlstore

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faultnet"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
)

const testPassword = "hunter2-Sup3rSecret-pw"

func TestOpenUnreachableFailsClosed(t *testing.T) {
	for _, dsn := range []string{
		"mysql://latch:" + testPassword + "@" + sqltest.ClosedPort(t) + "/test",
		"latch:" + testPassword + "@tcp(" + sqltest.ClosedPort(t) + ")/test",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := Open(ctx, dsn, Options{ConnectTimeout: 2 * time.Second})
		if err == nil {
			s.Close()
			t.Fatal("Open on a closed port succeeded")
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Open on a closed port: %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Fatalf("error leaks the password: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("Open only returned when the test's context expired")
		}
		cancel()
	}
}

func TestBadDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"mysql://latch:" + testPassword + "@127.0.0.1:3306/test?timeout=bogus",
		"mysql://latch:" + testPassword + "@/test",
		"mysql://latch:" + testPassword + "@127.0.0.1:3306/",
		"latch:" + testPassword + "@tcp(127.0.0.1:3306)/test?readTimeout=bogus",
		"latch:" + testPassword + "@tcp(127.0.0.1:3306",
	} {
		_, err := Open(context.Background(), dsn, Options{})
		if err == nil {
			t.Fatalf("Open accepted a malformed DSN")
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}

func TestParseDSNForms(t *testing.T) {
	cfg, err := ParseDSN("mysql://u:p%40ss@db.example:3307/app?tls=true&timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "u" || cfg.Passwd != "p@ss" || cfg.Addr != "db.example:3307" || cfg.DBName != "app" || cfg.TLSConfig != "true" || cfg.Timeout != 3*time.Second {
		t.Fatalf("mysql:// URL parsed as user %q addr %q db %q tls %q timeout %v", cfg.User, cfg.Addr, cfg.DBName, cfg.TLSConfig, cfg.Timeout)
	}
	if cfg, err := ParseDSN("mysql://u@db/app"); err != nil || cfg.Addr != "db:3306" {
		t.Fatalf("default port: %v, %v", cfg, err)
	}
	if cfg, err := ParseDSN("u:p@tcp(db:3306)/app"); err != nil || cfg.DBName != "app" {
		t.Fatalf("driver DSN: %v", err)
	}
}

// TestErrorScrubsPassword: a server error that quotes the password is
// scrubbed.
func TestErrorScrubsPassword(t *testing.T) {
	err := errorsFor(testPassword).Wrap(context.Background(), "get", errors.New("boom "+testPassword+" boom"))
	if strings.Contains(err.Error(), testPassword) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Wrap: %v", err)
	}
}

// TestOutageFailsClosedThenRecovers: while the database is unreachable every
// call fails with ErrUnavailable (never a record); once it is back the same
// Store works again without being reopened.
func TestOutageFailsClosedThenRecovers(t *testing.T) {
	dsn := testDatabase(t)
	openTestStoreAt(t, dsn, Options{}) // migrates
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := sqltest.NewProxy(t, cfg.Addr)
	cfg.Addr = p.Addr()
	ps := openTestStoreAt(t, cfg.FormatDSN(), Options{OpTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second, SkipMigrations: true})

	r := newRecord(t, "alice")
	ctx := t.Context()
	if _, err := ps.Create(ctx, r, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Get(ctx, r.ID); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s during an outage: %v, want ErrUnavailable", op, err)
		}
	}
	for range 3 {
		got, err := ps.Get(ctx, r.ID)
		check("Get", err)
		if got != nil {
			t.Fatal("Get during an outage returned a record")
		}
	}
	_, err = ps.Create(ctx, newRecord(t, "alice"), 3)
	check("Create", err)
	upd := r.Clone()
	upd.Version = 1
	check("Update", ps.Update(ctx, upd))
	_, err = ps.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current})
	check("RotateRefresh", err)
	check("Revoke", ps.Revoke(ctx, r.ID, store.ReasonLogout, time.Now()))
	_, err = ps.RevokeSubject(ctx, "alice", store.ID{}, store.ReasonRevokeAll, time.Now())
	check("RevokeSubject", err)
	rs, err := ps.List(ctx, "alice", time.Now())
	check("List", err)
	if len(rs) != 0 {
		t.Error("List during an outage returned records")
	}
	_, err = ps.Sweep(ctx, time.Now())
	check("Sweep", err)
	check("Ping", ps.Ping(ctx))
	_, _, err = ps.LoadKeyring(ctx)
	check("LoadKeyring", err)

	p.Restore()
	// The pool reconnects on demand; allow a few attempts for connections
	// that died with the outage to be discarded.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		got, err := ps.Get(rctx, r.ID)
		if err == nil {
			if got.ID != r.ID || got.Revoked() {
				t.Fatal("Get after recovery returned another record, or a write from the outage")
			}
			return
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get after recovery: %v", err)
		}
		if rctx.Err() != nil {
			t.Fatalf("store did not recover after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSweepRacingEvictionRetriesDeadlocks races Sweep against evicting
// Creates on the rows it deletes — the load that made a first MySQL store
// fail with hundreds of InnoDB deadlocks — and requires that no call fails:
// the store retries what InnoDB rolls back, and reports how often.
func TestSweepRacingEvictionRetriesDeadlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("races for a few seconds")
	}
	s := openTestStore(t, Options{})
	ctx := t.Context()
	const writers, each, max = 8, 60, 3
	base := time.Now().UTC()
	sweepAt := base.Add(time.Hour)
	var created, evicted, swept atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := s.Sweep(ctx, sweepAt)
			if err != nil {
				t.Errorf("Sweep: %v", err)
				return
			}
			swept.Add(int64(n))
		}
	})
	for w := range writers {
		wg.Go(func() {
			sub := []string{"alice", "bob"}[w%2]
			for i := range each {
				r := newRecord(t, sub)
				r.CreatedAt = base.Add(time.Duration(w*each+i) * time.Microsecond)
				r.LastSeenAt = r.CreatedAt
				if i%4 != 0 {
					r.IdleExpiresAt = base.Add(10 * time.Minute) // due at sweepAt
				}
				ev, err := s.Create(ctx, r, max)
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				created.Add(1)
				evicted.Add(int64(len(ev)))
			}
		})
	}
	wg.Wait()
	close(stop)
	sweeper.Wait()
	t.Logf("%d creates (%d evictions) racing %d sweep deletions: %d transient conflicts retried, none failed",
		created.Load(), evicted.Load(), swept.Load(), s.Stats().Retries)
}

// newRecord returns a live record of subject created now.
func newRecord(tb testing.TB, subject string) *store.Record {
	tb.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	r := &store.Record{ID: id, Subject: subject, CreatedAt: now, AuthTime: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(30 * time.Minute), ExpiresAt: now.Add(24 * time.Hour),
		IP: "192.0.2.1", UserAgent: "test-agent/1.0", Data: []byte(`{"k":"v"}`), Claims: []byte(`{"role":"admin"}`)}
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}

// TestStalledServerFailsClosed: a server that keeps its connections open
// but stops answering (a hung proxy; kernel keepalives still succeed) makes
// every call, Get included — which has no context deadline of its own —
// fail with ErrUnavailable within the store's bound, not the caller's.
func TestStalledServerFailsClosed(t *testing.T) {
	dsn := testDatabase(t)
	openTestStoreAt(t, dsn, Options{}) // migrates
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faultnet.NewProxy(t, cfg.Addr)
	cfg.Addr = p.Addr()
	ps := openTestStoreAt(t, cfg.FormatDSN(), Options{OpTimeout: time.Second, SkipMigrations: true})
	r := newRecord(t, "alice")
	if _, err := ps.Create(t.Context(), r, 3); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	defer p.Resume()
	// Bounded by the test, which must not be what ends the calls.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	got, err := ps.Get(ctx, r.ID)
	if !errors.Is(err, store.ErrUnavailable) || got != nil {
		t.Fatalf("Get from a stalled server: %v, %v; want ErrUnavailable and no record", got, err)
	}
	_, err = ps.Create(ctx, newRecord(t, "alice"), 3)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Create on a stalled server: %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the calls only ended with the test's context")
	}
}
