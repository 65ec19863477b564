package pgstore

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// TestUpgradeKeepsOldRows: a row written before 0003_auth reads back after
// the upgrade as unbound, with no ACR or AMR and every other field intact.
// The schema before 0003 is made by undoing 0003 on a current one.
func TestUpgradeKeepsOldRows(t *testing.T) {
	dsn := testDSN(t)
	schema := testSchema(t, dsn)
	ctx := ctxT(t)
	if _, err := MigrateDSN(ctx, dsn, schema); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, `ALTER TABLE `+q+`.sessions DROP COLUMN acr, DROP COLUMN amr, DROP COLUMN jkt;
		DELETE FROM `+q+`.schema_migrations WHERE version = 3`); err != nil {
		t.Fatalf("undoing 0003: %v", err)
	}
	now := time.Unix(1_800_000_000, 123).UTC()
	id, _ := store.NewID("alice", rand.Reader)
	rec := &store.Record{ID: id, Subject: "alice", CreatedAt: now, AuthTime: now, LastSeenAt: now,
		IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(24 * time.Hour), IP: "192.0.2.1", Claims: []byte(`{"a":1}`)}
	rec.VerifierHash[0] = 1
	args := sqlstore.Args(rec)
	old := append(append([]any{rec.ID[:], []byte(rec.Subject)}, args[:len(args)-7]...), args[len(args)-4]) // no acr, amr, jkt; the deadline; no checksums
	if _, err := conn.Exec(ctx, `INSERT INTO `+q+`.sessions (id, subject, version, verifier_hash, csrf_secret,
		refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
		created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
		revoked_at, revoke_reason, ip, user_agent, data, claims, deadline)
		VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`, old...); err != nil {
		t.Fatalf("insert in the 0002 layout: %v", err)
	}
	s := openTestStore(t, Options{Schema: schema})
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get after the upgrade: %v", err)
	}
	if got.ACR != "" || got.AMR != nil || got.JKT != [32]byte{} || got.IP != rec.IP || string(got.Claims) != `{"a":1}` ||
		!got.CreatedAt.Equal(now) || got.VerifierHash != rec.VerifierHash {
		t.Fatalf("old row after the upgrade: %+v", got)
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
