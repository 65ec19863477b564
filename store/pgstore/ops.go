package pgstore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// subjectLockKey is the advisory-lock object ID of subject (class
// lockClassSubject). Collisions only serialise two subjects' writes.
func subjectLockKey(subject string) int32 {
	h := fnv.New32a()
	h.Write([]byte(subject))
	return int32(h.Sum32())
}

// scanRecord reads one row of [sqlstore.Columns] through pgx's generic
// Scan. It is the fallback for rows not in binary format (simple protocol).
func scanRecord(row pgx.Row) (*store.Record, error) {
	var w sqlstore.Row
	if err := row.Scan(w.Dest()...); err != nil {
		return nil, err
	}
	return w.Record()
}

// columnOIDs are the types of [sqlstore.Columns]: bytea (17) or int8 (20).
var columnOIDs = [...]uint32{17, 17, 20, 17, 17, 17, 17, 17, 20, 20, 20, 20, 20, 20, 20, 20, 17, 17, 17, 17, 17, 17, 17, 17, 20, 20, 20, 20}

// readRecord decodes the current row of rows, which selected [sqlstore.Columns]. On
// the hot path (binary results, pgx's default) it reads the raw column
// values directly instead of through Scan's reflection and boxing.
func readRecord(rows pgx.Rows) (*store.Record, error) {
	fds := rows.FieldDescriptions()
	if len(fds) != len(columnOIDs) {
		return nil, fmt.Errorf("%w: %d columns", store.ErrCorrupt, len(fds))
	}
	for i, fd := range fds {
		if fd.Format != pgx.BinaryFormatCode || fd.DataTypeOID != columnOIDs[i] {
			return scanRecord(rows)
		}
	}
	return decodeRow(rows.RawValues())
}

// decodeRow builds a record from the binary values of [sqlstore.Columns]
// (bytea as is, int8 as 8 big-endian bytes); it copies what it keeps.
func decodeRow(v [][]byte) (*store.Record, error) {
	bad := false
	i64 := func(b []byte) int64 {
		if len(b) != 8 {
			bad = true
			return 0
		}
		return int64(binary.BigEndian.Uint64(b))
	}
	nullI64 := func(b []byte) sql.Null[int64] {
		if b == nil {
			return sql.Null[int64]{}
		}
		return sql.Null[int64]{V: i64(b), Valid: true}
	}
	w := sqlstore.Row{
		ID: v[0], Subject: v[1], Version: i64(v[2]), VerifierHash: v[3], CSRFSecret: v[4],
		RefreshKey: v[5], RefreshCurrent: v[6], RefreshPrevious: v[7], RotatedAt: i64(v[8]), Generation: i64(v[9]),
		CreatedAt: i64(v[10]), AuthTime: i64(v[11]), LastSeenAt: i64(v[12]), IdleExpiresAt: i64(v[13]), ExpiresAt: i64(v[14]),
		RevokedAt: i64(v[15]), RevokeReason: v[16], IP: v[17], UserAgent: v[18], Data: v[19], Claims: v[20],
		ACR: v[21], AMR: v[22], JKT: v[23],
		CRCMain: nullI64(v[24]), CRCRefresh: nullI64(v[25]), CRCRevoke: nullI64(v[26]), CRCVersion: nullI64(v[27]),
	}
	if bad {
		return nil, fmt.Errorf("%w: malformed row", store.ErrCorrupt)
	}
	return w.Record()
}

// queryRecord runs a statement that returns at most one row of [sqlstore.Columns];
// no row is pgx.ErrNoRows.
func (s *Store) queryRecord(ctx context.Context, sql string, args ...any) (*store.Record, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, pgx.ErrNoRows
	}
	r, err := readRecord(rows)
	if err != nil {
		return nil, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// Get implements [store.Store]: one indexed read by primary key.
//
// Its deadline is shared with the Gets that start within an eighth of
// OpTimeout (package deadline), rather than a timer and context of its
// own: a Get may run up to an eighth longer than OpTimeout, and a caller's
// cancellation is checked when it starts, not while it waits.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if s.opTimeout > 0 {
		ctx = s.deadlines.Bound(ctx)
	}
	r, err := s.queryRecord(ctx, s.q.get, id[:])
	if err != nil {
		return nil, s.err(ctx, "get", err)
	}
	return r, nil
}

// Create implements [store.Store]. The subject's advisory lock, the insert
// and the eviction run in one implicit transaction sent in a single round
// trip, so concurrent creates for one subject never leave more than max live
// sessions and never race a RevokeSubject.
func (s *Store) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := store.Validate(rec); err != nil {
		return nil, fmt.Errorf("pgstore: create: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()

	b := &pgx.Batch{}
	b.Queue(s.q.lockSubject, int32(lockClassSubject), subjectLockKey(rec.Subject))
	args := append([]any{rec.ID[:], []byte(rec.Subject)}, sqlstore.Args(rec)...)
	b.Queue(s.q.insert, args...)
	if max > 0 {
		keep := max
		if rec.Live(rec.CreatedAt) {
			keep-- // the new session counts towards max
		}
		at := sqlstore.RevokeTime(rec.CreatedAt)
		b.Queue(s.q.evict, []byte(rec.Subject), rec.ID[:], at, keep, []byte(store.ReasonEvicted), sqlstore.RevokeSum(at, store.ReasonEvicted))
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, s.err(ctx, "create", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, s.err(ctx, "create", err)
	}
	var evicted []store.ID
	if max > 0 {
		rows, err := br.Query()
		if err != nil {
			return nil, s.err(ctx, "create", err)
		}
		evicted, err = collectIDs(rows)
		if err != nil {
			return nil, s.err(ctx, "create", err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, s.err(ctx, "create", err)
	}
	return evicted, nil
}

func collectIDs(rows pgx.Rows) ([]store.ID, error) {
	defer rows.Close()
	return sqlstore.Collect(rows, sqlstore.ScanID)
}

// Update implements [store.Store]: a compare-and-swap on the version column
// (UPDATE … WHERE id = $1 AND version = $2 AND revoked_at = 0) that also
// tells "not found" from "conflict", in one statement.
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.Validate(rec); err != nil {
		return fmt.Errorf("pgstore: update: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	args := append([]any{rec.ID[:], int64(rec.Version)}, sqlstore.Args(rec)...)
	var updated, exists bool
	if err := s.pool.QueryRow(ctx, s.q.update, args...).Scan(&updated, &exists); err != nil {
		return s.err(ctx, "update", err)
	}
	switch {
	case updated:
		return nil
	case exists:
		return s.errs.Verdict("update", store.ErrConflict)
	default:
		return s.errs.Verdict("update", store.ErrNotFound)
	}
}

// RotateRefresh implements [store.Store]. The comparison of the current
// refresh hash and the rotation are one UPDATE; only when it matches no row
// does a second read fetch the stored record for the caller.
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rec, err := s.queryRecord(ctx, s.q.rotate, r.ID[:], r.Expect[:],
		r.Next.Key[:], r.Next.Current[:], r.Next.Previous[:],
		store.UnixNano(r.Next.RotatedAt), int64(r.Next.Generation),
		store.UnixNano(r.LastSeenAt), store.UnixNano(r.IdleExpiresAt), sqlstore.RotationSum(r))
	if err == nil {
		return rec, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, s.err(ctx, "rotate refresh", err)
	}
	// A fresh statement (fresh snapshot) so the caller sees the state that
	// beat it, not the one it expected.
	rec, err = s.queryRecord(ctx, s.q.get, r.ID[:])
	if err != nil {
		return nil, s.err(ctx, "rotate refresh", err)
	}
	return rec, s.errs.Verdict("rotate refresh", store.ErrConflict)
}

// Revoke implements [store.Store].
func (s *Store) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := store.ValidReason(reason, at); err != nil {
		return fmt.Errorf("pgstore: revoke: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var found bool
	atN := sqlstore.RevokeTime(at)
	if err := s.pool.QueryRow(ctx, s.q.revoke, id[:], []byte(reason), atN, sqlstore.RevokeSum(atN, reason)).Scan(&found); err != nil {
		return s.err(ctx, "revoke", err)
	}
	if !found {
		return s.errs.Verdict("revoke", store.ErrNotFound)
	}
	return nil
}

// RevokeSubject implements [store.Store]. It takes the subject's advisory
// lock, as Create does, so the two are serialised per subject.
func (s *Store) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := store.ValidReason(reason, at); err != nil {
		return nil, fmt.Errorf("pgstore: revoke subject: %w", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(s.q.lockSubject, int32(lockClassSubject), subjectLockKey(subject))
	atN := sqlstore.RevokeTime(at)
	b.Queue(s.q.revokeSubject, []byte(subject), except[:], []byte(reason), atN, sqlstore.RevokeSum(atN, reason))
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, s.err(ctx, "revoke subject", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, s.err(ctx, "revoke subject", err)
	}
	ids, err := collectIDs(rows)
	if err != nil {
		return nil, s.err(ctx, "revoke subject", err)
	}
	if err := br.Close(); err != nil {
		return nil, s.err(ctx, "revoke subject", err)
	}
	return ids, nil
}

// List implements [store.Store] from the partial subject index. Revoked rows
// are not in the index; expired ones are skipped here and deleted by Sweep,
// so there are no index entries to forget.
func (s *Store) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, s.q.list, []byte(subject), store.UnixNano(now))
	if err != nil {
		return nil, s.err(ctx, "list", err)
	}
	defer rows.Close()
	recs, err := sqlstore.Collect(rows, readRecord)
	if err != nil {
		return nil, s.err(ctx, "list", err)
	}
	return recs, nil
}

// Sweep implements [store.Sweeper]. It deletes records and tombstones whose
// deadline is at or before now in batches of Options.SweepBatch rows, each
// its own short statement found through the deadline index and skipping
// rows other calls hold locked, until a batch comes back short. Each batch
// gets the per-call deadline; ctx bounds the whole sweep. On error it
// returns how many it deleted so far.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int, error) {
	if err := s.trimEvents(ctx, now); err != nil {
		return 0, err
	}
	total := 0
	cutoff := store.UnixNano(now)
	if err := s.sweepReplay(ctx, cutoff); err != nil {
		return 0, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return total, s.err(ctx, "sweep", err)
		}
		n, err := s.sweepBatch(ctx, cutoff)
		total += n
		if err != nil {
			return total, s.err(ctx, "sweep", err)
		}
		if n < s.batch {
			return total, nil
		}
	}
}

func (s *Store) sweepBatch(ctx context.Context, cutoff int64) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, s.q.sweep, cutoff, s.batch)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// Ping implements [store.Pinger]: a round trip to the server, bounded by
// the per-call deadline.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.err(ctx, "ping", s.pool.Ping(ctx))
}

// KeyringVersion implements [store.KeyringVersioner]: the version alone,
// without the blob.
func (s *Store) KeyringVersion(ctx context.Context) (uint64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var version int64
	err := s.pool.QueryRow(ctx, s.q.keyringVersion).Scan(&version)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.err(ctx, "keyring version", err)
	}
	return uint64(version), nil
}

// LoadKeyring implements [store.KeyStore].
func (s *Store) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var blob []byte
	var version int64
	err := s.pool.QueryRow(ctx, s.q.loadKeyring).Scan(&blob, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, s.err(ctx, "load keyring", err)
	}
	return blob, uint64(version), nil
}

// SaveKeyring implements [store.KeyStore] with a compare-and-swap on the
// keyring's version.
func (s *Store) SaveKeyring(ctx context.Context, blob []byte, expect uint64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if blob == nil {
		blob = []byte{} // the column is NOT NULL; nil is "empty", not "none"
	}
	var n int64
	if expect == 0 {
		tag, err := s.pool.Exec(ctx, s.q.insertKeyring, blob)
		if err != nil {
			return s.err(ctx, "save keyring", err)
		}
		n = tag.RowsAffected()
	} else {
		tag, err := s.pool.Exec(ctx, s.q.updateKeyring, blob, int64(expect))
		if err != nil {
			return s.err(ctx, "save keyring", err)
		}
		n = tag.RowsAffected()
	}
	if n != 1 {
		return s.errs.Verdict("save keyring", store.ErrConflict)
	}
	return nil
}
