package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// TestUpgradeKeepsOldRows: a row written by the schema before 0002_auth
// reads back after the upgrade as unbound, with no ACR or AMR and every
// other field intact; and 0002_auth runs again cleanly when its version was
// not recorded (MySQL DDL is not transactional: a crash between the ALTER
// and the record must not wedge the next start).
func TestUpgradeKeepsOldRows(t *testing.T) {
	dsn := testDatabase(t)
	cfg, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlstore.Apply(ctx, connMigrator{conn}, dialect, migrations[:1]); err != nil {
		t.Fatalf("applying 0001 only: %v", err)
	}
	conn.Close()

	now := time.Unix(1_800_000_000, 123).UTC()
	id, _ := store.NewID("alice", rand.Reader)
	rec := &store.Record{ID: id, Subject: "alice", CreatedAt: now, AuthTime: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(24 * time.Hour), IP: "192.0.2.1", Claims: []byte(`{"a":1}`)}
	rec.VerifierHash[0] = 1
	// The 0001 layout: every column of today's but acr, amr and jkt.
	args := sqlstore.Args(rec)
	old := append(append([]any{rec.ID[:], []byte(rec.Subject)}, args[:len(args)-7]...), args[len(args)-4]) // no acr, amr, jkt; the deadline; no checksums
	if _, err := db.ExecContext(ctx, `INSERT INTO latch_sessions (id, subject, version, verifier_hash, csrf_secret,
		refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
		created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
		revoked_at, revoke_reason, ip, user_agent, data, claims, deadline)
		VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, old...); err != nil {
		t.Fatalf("insert in the 0001 layout: %v", err)
	}

	s := openTestStoreAt(t, dsn, Options{})
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get after the upgrade: %v", err)
	}
	if got.ACR != "" || got.AMR != nil || got.JKT != [32]byte{} || got.IP != rec.IP || string(got.Claims) != `{"a":1}` ||
		!got.CreatedAt.Equal(now) || got.VerifierHash != rec.VerifierHash {
		t.Fatalf("old row after the upgrade: %+v", got)
	}

	// Forget that 0002 ran, as after a crash between its ALTER and its
	// record: the next Migrate applies it again without error.
	if _, err := db.ExecContext(ctx, "DELETE FROM latch_schema_migrations WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	applied, err := Migrate(ctx, db)
	if err != nil || len(applied) != 1 || applied[0] != 2 {
		t.Fatalf("re-running 0002_auth: applied %v, %v", applied, err)
	}
	next := got.Clone()
	next.ACR, next.AMR, next.JKT = "urn:x", []string{"pwd", "otp"}, [32]byte{9}
	if err := s.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, id); err != nil || got.ACR != "urn:x" || len(got.AMR) != 2 || got.JKT[0] != 9 {
		t.Fatalf("after Update: %+v %v", got, err)
	}
}
