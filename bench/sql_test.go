package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/internal/benchpair"
	"github.com/latch-sessions/latch/internal/testmysql"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/mysqlstore"
	"github.com/latch-sessions/latch/store/pgstore"
)

// sessionColumns are the columns of a latch session row, as the stores
// read them (store/internal/sqlstore.Columns).
const sessionColumns = `id, subject, version, verifier_hash, csrf_secret,
	refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
	created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
	revoked_at, revoke_reason, ip, user_agent, data, claims,
	acr, amr, jkt, crc_main, crc_refresh, crc_revoke, crc_version`

// sessionRow holds one row of sessionColumns in plain driver types: what
// an application reading its own table would scan into.
type sessionRow struct {
	id, subject, verifier, csrf, rkey, rcur, rprev []byte
	version, rotated, gen                          int64
	created, auth, seen, idle, expires, revoked    int64
	reason, ip, ua, data, claims, acr, amr, jkt    []byte
	crc                                            [4]*int64
}

func (w *sessionRow) dest() []any {
	return []any{&w.id, &w.subject, &w.version, &w.verifier, &w.csrf, &w.rkey, &w.rcur, &w.rprev,
		&w.rotated, &w.gen, &w.created, &w.auth, &w.seen, &w.idle, &w.expires, &w.revoked,
		&w.reason, &w.ip, &w.ua, &w.data, &w.claims, &w.acr, &w.amr, &w.jkt,
		&w.crc[0], &w.crc[1], &w.crc[2], &w.crc[3]}
}

// BenchmarkSQLRatio is issue #15's SQL ratio: latch Manager.Validate +
// Session.Value on store/pgstore against a bare pgx QueryRow of the same
// row (the same SELECT by primary key on the store's own pool, scanned
// into []byte and int64), and on store/mysqlstore (MariaDB) against a bare
// database/sql QueryRow on the store's own *sql.DB. 16 goroutines over
// 1,000 sessions, latch and the peer taking turns of 50 ms
// (internal/benchpair); ratio-% is latch ÷ peer in ops/s, and both report
// the process CPU per op (the database server's is not counted: it runs
// the same query for both). PostgreSQL is LATCH_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test), MariaDB LATCH_TEST_MYSQL
// (default root@tcp(127.0.0.1:3306)/test); each is skipped when
// unreachable, unless LATCH_REQUIRE_INTEGRATION=1.
//
//	cd bench && go test -run '^$' -bench SQLRatio -benchtime 1s -count 6 -v .
func BenchmarkSQLRatio(b *testing.B) {
	const sessions = 1000
	var med benchpair.Medians
	run := func(name string, m *latch.Manager, tokens []string, peer func(ctx context.Context, id []byte) error) {
		ids := make([][]byte, len(tokens))
		for i, t := range tokens {
			s, err := m.Validate(context.Background(), t)
			if err != nil {
				b.Fatal(err)
			}
			id, _ := store.ParseID(s.ID())
			ids[i] = id[:]
		}
		latchOp := validateOp(m, tokens)
		peerOp := benchpair.Op{Name: "peer", Do: func(ctx context.Context, i int) error { return peer(ctx, ids[i]) }}
		runRatio(b, &med, "db="+name, name, 16, sessions, latchOp, peerOp)
	}

	if ps := postgresStore(b); ps != nil {
		m, tokens := latchSessions(b, ps.s, sessions)
		q := "SELECT " + sessionColumns + " FROM " + pgx.Identifier{ps.schema}.Sanitize() + ".sessions WHERE id = $1"
		pool := ps.s.Pool()
		run("postgres", m, tokens, func(ctx context.Context, id []byte) error {
			var w sessionRow
			return pool.QueryRow(ctx, q, id).Scan(w.dest()...)
		})
	}
	if ms := mariaStore(b); ms != nil {
		m, tokens := latchSessions(b, ms, sessions)
		db := ms.DB()
		stmt, err := db.Prepare("SELECT " + sessionColumns + " FROM latch_sessions WHERE id = ?")
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		run("mariadb", m, tokens, func(ctx context.Context, id []byte) error {
			var w sessionRow
			return stmt.QueryRowContext(ctx, id).Scan(w.dest()...)
		})
	}
	for _, name := range []string{"postgres", "mariadb"} {
		if r, n := med.Median(name + " ratio"); n > 0 {
			lc, _ := med.Median(name + " latch cpu")
			pc, _ := med.Median(name + " peer cpu")
			b.Logf("db=%-8s latch = %5.1f %% of the bare QueryRow (ops/s, median of %d); client CPU per op %.1f µs vs %.1f µs",
				name, r, n, lc, pc)
		}
	}
}

type pgBench struct {
	s      *pgstore.Store
	schema string
}

// postgresStore opens a pgstore on a fresh schema, dropped at the end, or
// skips (nil) when PostgreSQL is unreachable.
func postgresStore(b *testing.B) *pgBench {
	dsn := os.Getenv("LATCH_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schema := "latch_bench_" + strings.ToLower(rand.Text()[:8])
	s, err := pgstore.Open(ctx, dsn, pgstore.Options{Schema: schema})
	if err != nil {
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			b.Fatalf("PostgreSQL: %v", err)
		}
		b.Logf("PostgreSQL unreachable, skipped: %v", err)
		return nil
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.Pool().Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		s.Close()
	})
	return &pgBench{s, schema}
}

// mariaStore opens a mysqlstore on a database of its own (internal/
// testmysql, which skips b when MariaDB is unreachable).
func mariaStore(b *testing.B) *mysqlstore.Store {
	if !reachable(b, "MariaDB", func() error {
		db, err := sql.Open("mysql", testmysql.DefaultDSN)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := mysqlstore.Open(ctx, testmysql.Database(b), mysqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func reachable(b *testing.B, what string, ping func() error) bool {
	if os.Getenv("LATCH_TEST_MYSQL") != "" {
		return true // testmysql decides
	}
	if err := ping(); err != nil {
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			testredis.Unavailable(b, what+": "+err.Error())
		}
		b.Logf("%s unreachable, skipped: %v", what, err)
		return false
	}
	return true
}

// latchSessions returns a Manager on s and the tokens of n sessions
// holding {"user":"alice"}, 10 per subject.
func latchSessions(b *testing.B, s store.Store, n int) (*latch.Manager, []string) {
	m, err := latch.New(latch.Config{Store: s, Observer: latch.DiscardObserver})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tokens := make([]string, n)
	for i := range tokens {
		is, err := m.Create(ctx, latch.NewSession{Subject: fmt.Sprintf("user-%d", i/10), Data: []byte(`{"user":"alice"}`)})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = is.SessionToken.Reveal()
	}
	return m, tokens
}
