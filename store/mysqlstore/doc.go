// Package mysqlstore keeps latch sessions in MySQL (8.0 or later) or
// MariaDB (10.5 or later), for teams that already run one and want N
// stateless latch replicas to share one session store.
//
// Most users need two calls:
//
//	s, err := mysqlstore.Open(ctx, "mysql://latch:…@db:3306/app?tls=true", mysqlstore.Options{})
//	…
//	defer s.Close()
//	m, err := latch.New(s, …)
//
// and something that calls [Store.Sweep] now and then (every minute is
// plenty); nothing else deletes expired rows.
//
// # DSN
//
// [Open] takes a mysql:// URL (mysql://user:password@host:3306/db?param=…)
// or go-sql-driver's own form (user:password@tcp(host:3306)/db?param=…);
// parameters are the driver's (tls=true across a network, timeout, …). The
// DSN must name a database. The password never appears in an error this
// package returns, nor does a DSN that fails to parse.
//
// # Schema and migrations
//
// Tables live in the DSN's database, named latch_sessions,
// latch_subject_locks, latch_keyring, latch_replay, latch_events,
// latch_event_seq and latch_schema_migrations. The schema
// is versioned by SQL files embedded in the binary (migrations/0001_init.sql,
// …); [Open] applies pending ones under a named lock, so replicas starting
// together migrate once; [Migrate] does the same for a deployment step run
// with a more privileged user, after which Options.SkipMigrations lets the
// server only check the version.
//
// A session is one row keyed by its 18-byte ID, with a column per field.
// Times are BIGINT Unix nanoseconds (0 = unset), exactly as
// [store.Record.MarshalBinary] encodes them, so records read back to the
// nanosecond (DATETIME(6) keeps microseconds); strings are VARBINARY and
// Data and Claims MEDIUMBLOB, because store.MaxValueLen is one byte more
// than a BLOB holds. Two secondary indexes serve every query besides the
// primary key: (subject, revoked_at, last_seen_at, created_at) — the subject
// index — and (deadline), for the sweeper.
// Three CRC-32C checksums per row (crc_main, crc_refresh, crc_revoke; see
// "Corrupted records" in RELIABILITY.md) make a row damaged on disk or in
// memory store.ErrUnavailable and store.ErrCorrupt, never a session.
//
// # Atomicity
//
//   - Get is one primary-key read through a prepared statement: the
//     validation hot path is one round trip.
//   - Update is a single compare-and-swap UPDATE on the version column
//     when the verifier hash stays (a touch); only a refused swap costs a
//     second read, to tell "not found" from "conflict". A renewal (a new
//     verifier hash) locks the row at the expected version, updates it and
//     appends its event in one transaction. Revoke is one transaction: the
//     UPDATE and, if it revoked a live row, its events.
//   - RotateRefresh compares the stored refresh hash and rotates in one
//     UPDATE inside a short transaction that then reads back the row it
//     holds: the record it wrote, or the one that beat it.
//   - Create with a limit and RevokeSubject run in one READ COMMITTED
//     transaction that first locks the subject's row in
//     latch_subject_locks (one of 4096 slots, by [store.SubjectTag]), so
//     they are serialised per subject without gap locks on session rows:
//     concurrent logins never leave more than the limit, and a revoke-all
//     never misses a session created before it. Victims are revoked one
//     row at a time, each re-checked live.
//
// # Events
//
// The store implements [store.EventLog], so GET /v1/events and cached
// clients work on MySQL/MariaDB as on the other stores. Every revocation
// (Revoke, eviction by Create, RevokeSubject) and renewal appends its events
// to latch_events in the same transaction as the change (migration 4), so an
// event exists exactly when its change committed. Events are numbered in
// commit order: a transaction that writes events takes, as its last lock,
// the one row of latch_event_seq (UPDATE … LAST_INSERT_ID(seq + n)), held
// until it commits, so under READ COMMITTED a reader that has seen seq n
// never finds a lower one later. Only event writers take that lock, and
// they take it after every session row they lock and wait for nothing while
// holding it, so it adds no lock cycle (the sweeper takes neither). MySQL
// has no LISTEN/NOTIFY: a subscriber holds one pooled connection and polls
// the rows after the last seq it delivered every 25 ms (half of
// store.EventAliveInterval, so a slow answer does not break the Alive
// promise), each poll's send time being its proof of life. Events are kept
// for replay for five minutes and at least the last 10,000 (Sweep trims
// the rest in batches of 1,000).
//
// # Deadlocks
//
// InnoDB resolves lock cycles by rolling one transaction back (error 1213)
// and gives up on long lock waits (1205). Both are transient: every write
// retries its statement or whole transaction, with a short random pause,
// until it succeeds or the call's deadline ends; [Store.Stats] counts the
// retries. The sweeper is built to be rarely involved at all: it reads due
// IDs without locking, then deletes them by primary key in chunks of 50,
// each an autocommit statement that re-checks the deadline (a row a write
// has just extended stays), so it never holds rows while waiting for a
// writer's. Racing sweeps against evicting creates on the same rows gives
// a handful of retries and no failure (see the package's tests).
//
// # Failing closed
//
// Every call is bounded by Options.OpTimeout (default 2 s) on top of the
// caller's context: writes by a context deadline, Get — the hot path — by
// the connections' read and write timeouts, which the store sets to
// OpTimeout, so a server that stops answering (or a proxy that stalls)
// fails it just the same without a per-query context watcher. Any failure — connection refused, timeout, cancelled
// context, server error, a row that does not decode — is returned as an
// error matching [store.ErrUnavailable], which latch treats as "not
// authenticated"; on a done context it also matches ctx.Err(). Missing rows
// match [store.ErrNotFound], duplicate IDs [store.ErrExists], records the
// contract forbids [store.ErrInvalid]. The pool reconnects by itself when
// the server comes back.
package mysqlstore
