// Package pgstore keeps latch sessions in PostgreSQL, for teams that already
// run it and want N stateless latch replicas to share one session store.
//
// Most users need two calls:
//
//	s, err := pgstore.Open(ctx, "postgres://latch:…@db:5432/app?sslmode=verify-full", pgstore.Options{})
//	…
//	defer s.Close()
//	m, err := latch.New(s, …)
//
// and something that calls [Store.Sweep] now and then (every minute is
// plenty); nothing else deletes expired rows.
//
// # DSN
//
// Open takes what libpq takes: a URL
// (postgres://user:password@host:5432/db?sslmode=verify-full) or key=value
// pairs (host=db user=latch dbname=app sslmode=verify-full), with unset
// parts from the PG* environment variables and ~/.pgpass. pgxpool's
// pool_max_conns, pool_min_conns, pool_max_conn_lifetime,
// pool_max_conn_idle_time and pool_health_check_period parameters are
// honoured; non-zero [Options] fields override them. Use sslmode=verify-full
// across a network. The password never appears in an error this package
// returns, nor does a DSN that fails to parse.
//
// # Schema and migrations
//
// Tables live in their own schema, "latch" unless [Options].Schema says
// otherwise: sessions, keyring and schema_migrations. Statements name them
// with the schema (no search_path), so a Store can share a pool with other
// code and tests can run side by side in one database, a schema each.
//
// The schema is versioned by SQL files embedded in the binary
// (migrations/0001_init.sql, …). [Open] applies the pending ones; [Migrate]
// and [MigrateDSN] do the same for a deployment step ("latch migrate") run
// with a more privileged role, after which Options.SkipMigrations lets the
// server only check the version. Pending migrations run in one transaction
// under an advisory lock, so replicas starting together migrate once and a
// failed migration leaves nothing behind.
//
// A session is one row keyed by its 18-byte ID, with a column per field so
// SQL can compare the version and the refresh hash. Times are bigint Unix
// nanoseconds (0 = unset), exactly as [store.Record.MarshalBinary] encodes
// them, so records read back unchanged; strings are bytea because the
// contract treats them as opaque bytes. A deadline column holds the earlier
// of the idle and absolute deadlines. Two indexes serve every query besides
// the primary key: (subject, last_seen_at DESC, created_at DESC) over
// unrevoked rows — the subject index — and (deadline), for the sweeper.
// Three CRC-32C checksums per row (crc_main, crc_refresh, crc_revoke; see
// "Corrupted records" in RELIABILITY.md) make a row damaged on disk or in
// memory store.ErrUnavailable and store.ErrCorrupt, never a session.
//
// # Atomicity
//
//   - Get is one primary-key read: the validation hot path is one round trip.
//   - Update is a single compare-and-swap statement
//     (UPDATE … WHERE id = $1 AND version = $2 AND revoked_at = 0) that also
//     tells "not found" from "conflict".
//   - RotateRefresh compares the stored refresh hash and rotates in one
//     UPDATE; only a failed comparison costs a second read, which returns
//     the record that won.
//   - Create (with eviction) and RevokeSubject take a per-subject
//     transaction-scoped advisory lock and run in one implicit transaction
//     sent as one batch (one round trip), so they are serialised per
//     subject: concurrent logins never leave more than the limit, and a
//     revoke-all never misses a session created before it.
//   - Revoke is one statement. Revoked rows leave the subject index at once
//     and stay as tombstones until their deadline, so their tokens are
//     reported as revoked rather than unknown.
//
// Refresh hashes are compared by the server with ordinary bytea equality.
// They are SHA-256/HMAC digests of secrets the store never sees, so timing
// reveals nothing usable.
//
// # Events
//
// The store implements [store.EventLog] with an events table (migration 2)
// written by the same statement as each revocation or renewal, ordered by
// commit (an advisory lock taken only by event writers), announced by a
// NOTIFY trigger and kept for replay for five minutes and at least the last
// 10,000 events (Sweep trims it). A subscriber LISTENs on one pooled
// connection and reads new rows on each notification and every 50 ms, each
// read being its proof of life.
//
// # Sweeper
//
// Rows are not deleted when they expire; [Store.Sweep] deletes every row
// (live or tombstone) whose deadline is at or before now, through the
// deadline index, in batches of Options.SweepBatch rows (default 500), each
// its own statement and transaction, using FOR UPDATE SKIP LOCKED so it
// never waits on, nor long blocks, the request path. Several replicas may
// sweep at once. Expired rows that are not yet swept are already invisible
// to List and eviction, and the manager checks deadlines on every read.
//
// # Failing closed
//
// Every call runs under Options.OpTimeout (default 2 s) on top of the
// caller's context, and Open sets the server's statement_timeout to match,
// so a database that is down, partitioned or overloaded answers within a
// bounded time. Any failure — connection refused, timeout, cancelled
// context, server error, a row that does not decode — is returned as an
// error matching [store.ErrUnavailable], which latch treats as "not
// authenticated"; no record is ever returned with an error except the one
// [store.Store.RotateRefresh] defines. Missing rows match
// [store.ErrNotFound], duplicate IDs [store.ErrExists]. The pool reconnects
// by itself when the server comes back.
//
// # Compatibility
//
// PostgreSQL 12 or later. By default pgx prepares and caches statements per
// connection; behind a transaction-pooling PgBouncer add
// default_query_exec_mode=exec (or simple_protocol) to the DSN. Every mode is
// tested; Create and RevokeSubject stay atomic in all of them because each
// is one implicit transaction.
package pgstore
