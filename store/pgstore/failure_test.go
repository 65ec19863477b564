package pgstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
)

const testPassword = "hunter2-Sup3rSecret-pw"

func TestOpenUnreachableFailsClosed(t *testing.T) {
	dsn := "postgres://latch:" + testPassword + "@" + sqltest.ClosedPort(t) + "/test?sslmode=disable"
	// Bounded by ctx, not asserted in wall-clock terms.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
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
}

// TestOperationsFailClosed: every call on a store whose database is gone
// answers ErrUnavailable — never a record, never ErrNotFound.
func TestOperationsFailClosed(t *testing.T) {
	cfg, err := pgxpool.ParseConfig("postgres://latch:" + testPassword + "@" + sqltest.ClosedPort(t) + "/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := New(pool, Options{Schema: "nowhere", OpTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRecord(t, "alice", 0)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on an unreachable database: %v, want ErrUnavailable", op, err)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("%s error leaks the password: %v", op, err)
		}
	}
	got, err := s.Get(ctx, r.ID)
	check("Get", err)
	if got != nil {
		t.Error("Get returned a record with an error")
	}
	_, err = s.Create(ctx, r, 3)
	check("Create", err)
	check("Update", s.Update(ctx, r))
	_, err = s.RotateRefresh(ctx, store.Rotation{ID: r.ID})
	check("RotateRefresh", err)
	check("Revoke", s.Revoke(ctx, r.ID, store.ReasonLogout, testEpoch))
	_, err = s.RevokeSubject(ctx, "alice", store.ID{}, store.ReasonRevokeAll, testEpoch)
	check("RevokeSubject", err)
	_, err = s.List(ctx, "alice", testEpoch)
	check("List", err)
	_, err = s.Sweep(ctx, testEpoch)
	check("Sweep", err)
	check("Ping", s.Ping(ctx))
	_, _, err = s.LoadKeyring(ctx)
	check("LoadKeyring", err)
	check("SaveKeyring", s.SaveKeyring(ctx, []byte("x"), 0))
}

func TestCancelledContextIsUnavailable(t *testing.T) {
	s := openTestStore(t, Options{})
	r := newRecord(t, "alice", 0)
	if _, err := s.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := s.Get(ctx, r.ID)
	if !errors.Is(err, store.ErrUnavailable) || got != nil {
		t.Fatalf("Get with a cancelled context: %v, %v; want ErrUnavailable and no record", got, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error does not wrap its cause: %v", err)
	}
}

func TestBadDSNHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://latch:" + testPassword + "@127.0.0.1:notaport/test",
		"host=127.0.0.1 password=" + testPassword + " port=notaport",
		"postgres://latch:" + testPassword + "@127.0.0.1/test?sslmode=bogus",
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

// TestErrorScrubsPassword: a server error that quotes the password (here a
// failed login message would not, so we fabricate one) is scrubbed.
func TestErrorScrubsPassword(t *testing.T) {
	err := wrapErr(context.Background(), "get", errors.New("boom "+testPassword+" boom"), testPassword)
	if strings.Contains(err.Error(), testPassword) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("wrapErr: %v", err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	dsn := testDSN(t)
	schema := testSchema(t, dsn)
	s1 := openTestStore(t, Options{Schema: schema})
	r := newRecord(t, "alice", 0)
	if _, err := s1.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, Options{Schema: schema}) // migrations already applied
	mustGet(t, s2, r.ID)
	applied, err := Migrate(ctxT(t), s2.Pool(), schema)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate on a current schema applied %v, %v", applied, err)
	}
	applied, err = MigrateDSN(ctxT(t), dsn, schema)
	if err != nil || len(applied) != 0 {
		t.Fatalf("MigrateDSN on a current schema applied %v, %v", applied, err)
	}
	if n := countMigrations(t, s2, schema); n != len(migrations) {
		t.Fatalf("%d rows in schema_migrations, want %d", n, len(migrations))
	}
	// SkipMigrations accepts a current schema …
	openTestStore(t, Options{Schema: schema, SkipMigrations: true})
}

func TestSkipMigrationsRefusesStaleSchema(t *testing.T) {
	dsn := testDSN(t)
	schema := testSchema(t, dsn)
	_, err := Open(ctxT(t), dsn, Options{Schema: schema, SkipMigrations: true})
	if err == nil || !strings.Contains(err.Error(), "latch migrate") {
		t.Fatalf("Open with SkipMigrations on an empty schema: %v; want a hint to migrate", err)
	}
}

func countMigrations(t *testing.T, s *Store, schema string) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(ctxT(t), "SELECT count(*) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConcurrentMigrate: replicas starting together migrate exactly once.
func TestConcurrentMigrate(t *testing.T) {
	dsn := testDSN(t)
	schema := testSchema(t, dsn)
	const n = 4
	var wg sync.WaitGroup
	applied := make([][]int, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = MigrateDSN(ctxT(t), dsn, schema)
		}()
	}
	wg.Wait()
	total := 0
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("concurrent Migrate: %v", errs[i])
		}
		total += len(applied[i])
	}
	if total != len(migrations) {
		t.Fatalf("concurrent migrations applied %d in total, want %d (each exactly once)", total, len(migrations))
	}
}

// TestConcurrentOpen: two Opens at once both succeed on one fresh schema.
func TestConcurrentOpen(t *testing.T) {
	dsn := testDSN(t)
	schema := testSchema(t, dsn)
	var wg sync.WaitGroup
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctxT(t), dsn, Options{Schema: schema})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
		defer stores[i].Close()
	}
	if n := countMigrations(t, stores[0], schema); n != len(migrations) {
		t.Fatalf("%d rows in schema_migrations, want %d", n, len(migrations))
	}
}

func TestMigrationFiles(t *testing.T) {
	// sqlstore.LoadMigrations has checked names and versions at init.
	for _, m := range migrations {
		if !strings.Contains(m.SQL, "{{schema}}.") {
			t.Fatalf("migration %s does not qualify its names with {{schema}}", m.Name)
		}
	}
	if SchemaVersion() != len(migrations) {
		t.Fatal("SchemaVersion is not the newest migration")
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New(nil) succeeded")
	}
	if err := checkSchema(strings.Repeat("x", 64)); err == nil {
		t.Error("64-byte schema name accepted")
	}
	_, err := Open(context.Background(), "postgres://127.0.0.1:1/x", Options{MinConns: 9, MaxConns: 2})
	if err == nil || !strings.Contains(err.Error(), "MinConns") {
		t.Errorf("MinConns > MaxConns: %v", err)
	}
}
