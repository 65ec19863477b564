package mysqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// Statement texts. Every statement names latch_ tables in the DSN's
// database and is prepared once per pooled connection.
var (
	sqlGet    = `SELECT ` + sqlstore.Columns + ` FROM latch_sessions WHERE id = ?`
	sqlInsert = `INSERT INTO latch_sessions (id, subject, version, verifier_hash, csrf_secret,
		refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
		created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
		revoked_at, revoke_reason, ip, user_agent, data, claims, acr, amr, jkt, deadline,
		crc_main, crc_refresh, crc_revoke, crc_version)
		VALUES (?, ?, 1` + strings.Repeat(", ?", sqlstore.NumColumns-3) + `, 1)`
	sqlLockSubject = `SELECT slot FROM latch_subject_locks WHERE slot = ? FOR UPDATE`
	// Live sessions of a subject at a time, most recently seen first: the
	// subject index. List, eviction and RevokeSubject use it.
	sqlLive = `SELECT ` + sqlstore.Columns + ` FROM latch_sessions
		WHERE subject = ? AND revoked_at = 0 AND deadline > ?
		ORDER BY last_seen_at DESC, created_at DESC, id DESC`
	sqlLiveIDs = `SELECT id FROM latch_sessions
		WHERE subject = ? AND revoked_at = 0 AND deadline > ? AND id <> ?
		ORDER BY last_seen_at DESC, created_at DESC, id DESC`
	// Revokes one session if it is still live at the given time; eviction
	// and RevokeSubject count what it changed.
	sqlRevokeLive = `UPDATE latch_sessions SET revoked_at = ?, revoke_reason = ?, ` + sqlstore.SetRevokeSum("?") + `, version = version + 1
		WHERE id = ? AND revoked_at = 0 AND deadline > ?`
	sqlUpdate = `UPDATE latch_sessions SET
		verifier_hash = ?, csrf_secret = ?,
		refresh_key = ?, refresh_current = ?, refresh_previous = ?,
		refresh_rotated_at = ?, refresh_generation = ?,
		created_at = ?, auth_time = ?, last_seen_at = ?,
		idle_expires_at = ?, expires_at = ?,
		revoked_at = ?, revoke_reason = ?, ip = ?, user_agent = ?,
		data = ?, claims = ?, acr = ?, amr = ?, jkt = ?, deadline = ?,
		crc_main = ?, crc_refresh = ?, crc_revoke = ?, crc_version = version + 1,
		version = version + 1
		WHERE id = ? AND version = ? AND revoked_at = 0`
	// Update's fast path: the same statement when the verifier hash does
	// not change (a touch), which writes no event.
	sqlUpdateSame = sqlUpdate + ` AND verifier_hash = ?`
	// Locks the row Update is about to renew, and reads what its event
	// needs.
	sqlLockVersion = `SELECT subject, verifier_hash FROM latch_sessions WHERE id = ? AND version = ? AND revoked_at = 0 FOR UPDATE`
	sqlSubject     = `SELECT subject FROM latch_sessions WHERE id = ?`
	sqlExists      = `SELECT 1 FROM latch_sessions WHERE id = ?`
	sqlRotate      = `UPDATE latch_sessions SET
		refresh_key = ?, refresh_current = ?, refresh_previous = ?,
		refresh_rotated_at = ?, refresh_generation = ?,
		last_seen_at = ?, idle_expires_at = ?, deadline = LEAST(?, expires_at),
		` + sqlstore.SetRefreshSum("?") + `, version = version + 1
		WHERE id = ? AND refresh_current = ? AND revoked_at = 0`
	sqlRevoke = `UPDATE latch_sessions SET revoked_at = ?, revoke_reason = ?, ` + sqlstore.SetRevokeSum("?") + `, version = version + 1
		WHERE id = ? AND revoked_at = 0`
	// The sweeper reads due IDs without locking, then deletes them by
	// primary key, re-checking the deadline: a row whose deadline a write
	// moved in between stays.
	sqlDue            = `SELECT id FROM latch_sessions WHERE deadline <= ? ORDER BY deadline LIMIT ?`
	sqlLoadKeyring    = `SELECT ring, version FROM latch_keyring WHERE id = 1`
	sqlKeyringVersion = `SELECT version FROM latch_keyring WHERE id = 1`
	sqlInsertKeyring  = `INSERT IGNORE INTO latch_keyring (id, version, ring) VALUES (1, 1, ?)`
	sqlUpdateKeyring  = `UPDATE latch_keyring SET ring = ?, version = version + 1 WHERE id = 1 AND version = ?`
)

// statements are the prepared forms of the hot statements.
type statements struct {
	get, insert, lock, live, liveIDs, revokeLive, update, exists, rotate, revoke *sql.Stmt
	updateSame, lockVersion, subject, eventSeq, eventInsert                      *sql.Stmt
}

func prepare(ctx context.Context, db *sql.DB) (statements, error) {
	var st statements
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{{&st.get, sqlGet}, {&st.insert, sqlInsert}, {&st.lock, sqlLockSubject}, {&st.live, sqlLive}, {&st.liveIDs, sqlLiveIDs},
		{&st.revokeLive, sqlRevokeLive}, {&st.update, sqlUpdate}, {&st.exists, sqlExists}, {&st.rotate, sqlRotate}, {&st.revoke, sqlRevoke},
		{&st.updateSame, sqlUpdateSame}, {&st.lockVersion, sqlLockVersion}, {&st.subject, sqlSubject},
		{&st.eventSeq, sqlEventSeq}, {&st.eventInsert, sqlEventInsert}} {
		stmt, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			st.close()
			return statements{}, err
		}
		*p.dst = stmt
	}
	return st, nil
}

func (st statements) close() {
	for _, s := range []*sql.Stmt{st.get, st.insert, st.lock, st.live, st.liveIDs, st.revokeLive, st.update, st.exists, st.rotate, st.revoke,
		st.updateSame, st.lockVersion, st.subject, st.eventSeq, st.eventInsert} {
		if s != nil {
			s.Close()
		}
	}
}

// lockSlot is the row of latch_subject_locks that serialises a subject's
// Create-with-eviction and RevokeSubject. Subjects sharing a slot only
// wait for each other.
func lockSlot(subject string) uint16 { return store.SubjectTag(subject) % 4096 }

type scanner interface{ Scan(dest ...any) error }

func scanRecord(row scanner) (*store.Record, error) {
	var w sqlstore.Row
	if err := row.Scan(w.Dest()...); err != nil {
		return nil, err
	}
	return w.Record()
}

// Get implements [store.Store]: one indexed read by primary key through a
// prepared statement. It is bounded by the connections' read and write
// timeouts (Options.OpTimeout) and the dial timeout rather than by a
// per-call context deadline: the driver watches a cancellable context from
// another goroutine on every query, which costs the validation hot path
// more than the read itself on a busy machine. The caller's context is
// honoured as given.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	r, err := scanRecord(s.stmts.get.QueryRowContext(ctx, id[:]))
	if err != nil {
		return nil, s.err(ctx, "get", err)
	}
	return r, nil
}

// tx runs f in a transaction (READ COMMITTED, the connections' level: no
// gap locks), retried as a whole on a deadlock or lock wait timeout.
func (s *Store) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return s.retry(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := f(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

// Create implements [store.Store]. One transaction locks the subject's
// slot, inserts the record and evicts beyond max, so concurrent creates
// for one subject never leave more than max live sessions and never race
// a RevokeSubject.
func (s *Store) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := store.Validate(rec); err != nil {
		return nil, s.errs.Wrap(ctx, "create", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	args := append([]any{rec.ID[:], []byte(rec.Subject)}, sqlstore.Args(rec)...)
	if max <= 0 {
		// Nothing to evict: one autocommit INSERT. A RevokeSubject either
		// sees the committed row or ran before it.
		err := s.retry(ctx, func() error {
			_, err := s.stmts.insert.ExecContext(ctx, args...)
			return err
		})
		return nil, s.err(ctx, "create", err)
	}
	keep := max
	if rec.Live(rec.CreatedAt) {
		keep-- // the new session counts towards max
	}
	var evicted []store.ID
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var slot uint16
		if err := tx.StmtContext(ctx, s.stmts.lock).QueryRowContext(ctx, lockSlot(rec.Subject)).Scan(&slot); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.stmts.insert).ExecContext(ctx, args...); err != nil {
			return err
		}
		var err error
		evicted, err = s.revokeLive(ctx, tx, rec.Subject, rec.ID, keep, store.ReasonEvicted, rec.CreatedAt, rec.CreatedAt)
		if err != nil {
			return err
		}
		var evs []store.Event
		for _, id := range evicted {
			evs = append(evs, store.RevokeEvents(id, rec.Subject, store.ReasonEvicted, rec.CreatedAt)...)
		}
		return s.appendEvents(ctx, tx, evs)
	})
	if err != nil {
		return nil, s.err(ctx, "create", err)
	}
	return evicted, nil
}

// revokeLive revokes, with reason at at, the subject's sessions live at
// liveAt (every unrevoked one if liveAt is zero) other than except, beyond
// the keep most recently seen, and returns their IDs. The subject's slot is
// locked. A session that stops being live while this runs (revoked, swept)
// is not counted, and the next one is revoked in its place, so exactly keep
// remain.
func (s *Store) revokeLive(ctx context.Context, tx *sql.Tx, subject string, except store.ID, keep int, reason string, at, liveAt time.Time) ([]store.ID, error) {
	atN := sqlstore.RevokeTime(at)
	var liveN int64 // every deadline is after 0
	if !liveAt.IsZero() {
		liveN = sqlstore.RevokeTime(liveAt)
	}
	var out []store.ID
	for {
		rows, err := tx.StmtContext(ctx, s.stmts.liveIDs).QueryContext(ctx, []byte(subject), liveN, except[:])
		if err != nil {
			return nil, err
		}
		ids, err := collectIDs(rows)
		if err != nil {
			return nil, err
		}
		if len(ids) <= keep {
			return out, nil
		}
		missed := false
		for _, id := range ids[keep:] {
			res, err := tx.StmtContext(ctx, s.stmts.revokeLive).ExecContext(ctx, atN, []byte(reason), sqlstore.RevokeSum(atN, reason), id[:], liveN)
			if err != nil {
				return nil, err
			}
			if n, err := res.RowsAffected(); err != nil {
				return nil, err
			} else if n == 1 {
				out = append(out, id)
			} else {
				missed = true
			}
		}
		if !missed {
			return out, nil
		}
	}
}

func collectIDs(rows *sql.Rows) ([]store.ID, error) {
	defer rows.Close()
	return sqlstore.Collect(rows, sqlstore.ScanID)
}

// Update implements [store.Store]: a compare-and-swap on the version
// column. A touch (the verifier hash unchanged) is one statement. A renewal
// (a new verifier hash) is a transaction that locks the row at the expected
// version, updates it and appends session.renewed, so the event commits
// exactly with the change. Only a refused swap costs a read to tell "not
// found" from "conflict".
func (s *Store) Update(ctx context.Context, rec *store.Record) error {
	if err := store.Validate(rec); err != nil {
		return s.errs.Wrap(ctx, "update", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	args := append(sqlstore.Args(rec), rec.ID[:], int64(rec.Version))
	var n int64
	err := s.retry(ctx, func() error {
		res, err := s.stmts.updateSame.ExecContext(ctx, append(args, rec.VerifierHash[:])...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		// A renewal, or a refused swap: the transaction tells them apart
		// under the row's lock.
		err = s.tx(ctx, func(tx *sql.Tx) error {
			n = 0
			var subject, hash []byte
			err := tx.StmtContext(ctx, s.stmts.lockVersion).QueryRowContext(ctx, rec.ID[:], int64(rec.Version)).Scan(&subject, &hash)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			res, err := tx.StmtContext(ctx, s.stmts.update).ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n != 1 || bytes.Equal(hash, rec.VerifierHash[:]) {
				return err
			}
			return s.appendEvents(ctx, tx, []store.Event{{Type: store.EventSessionRenewed, SessionID: rec.ID, Subject: string(subject), At: rec.LastSeenAt}})
		})
	}
	if err != nil {
		return s.err(ctx, "update", err)
	}
	if n == 1 {
		return nil
	}
	return s.missing(ctx, "update", rec.ID)
}

// missing tells a refused write on an existing record (ErrConflict) from
// one on no record (ErrNotFound).
func (s *Store) missing(ctx context.Context, op string, id store.ID) error {
	var one int
	err := s.stmts.exists.QueryRowContext(ctx, id[:]).Scan(&one)
	switch {
	case err == nil:
		return s.errs.Verdict(op, store.ErrConflict)
	case errors.Is(err, sql.ErrNoRows):
		return s.errs.Verdict(op, store.ErrNotFound)
	}
	return s.err(ctx, op, err)
}

// RotateRefresh implements [store.Store]: a short transaction compares the
// current refresh hash and rotates in one UPDATE, then reads back the row
// it holds locked — the record it wrote, or on a refused comparison the
// one that beat it.
func (s *Store) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var (
		rec     *store.Record
		rotated bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts.rotate).ExecContext(ctx,
			r.Next.Key[:], r.Next.Current[:], r.Next.Previous[:],
			store.UnixNano(r.Next.RotatedAt), int64(r.Next.Generation),
			store.UnixNano(r.LastSeenAt), store.UnixNano(r.IdleExpiresAt), store.UnixNano(r.IdleExpiresAt),
			sqlstore.RotationSum(r), r.ID[:], r.Expect[:])
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		rotated = n == 1
		rec, err = scanRecord(tx.StmtContext(ctx, s.stmts.get).QueryRowContext(ctx, r.ID[:]))
		return err
	})
	if err != nil {
		return nil, s.err(ctx, "rotate refresh", err)
	}
	if !rotated {
		return rec, s.errs.Verdict("rotate refresh", store.ErrConflict)
	}
	return rec, nil
}

// Revoke implements [store.Store]: a transaction revokes the row if it is
// live and appends its events (store.RevokeEvents); only a revoke that
// changed nothing costs a second read, to tell a revoked record (success)
// from none (ErrNotFound).
func (s *Store) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := store.ValidReason(reason, at); err != nil {
		return s.errs.Wrap(ctx, "revoke", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var n int64
	atN := sqlstore.RevokeTime(at)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts.revoke).ExecContext(ctx, atN, []byte(reason), sqlstore.RevokeSum(atN, reason), id[:])
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		var subject []byte
		if err := tx.StmtContext(ctx, s.stmts.subject).QueryRowContext(ctx, id[:]).Scan(&subject); err != nil {
			return err
		}
		return s.appendEvents(ctx, tx, store.RevokeEvents(id, string(subject), reason, at))
	})
	if err != nil {
		return s.err(ctx, "revoke", err)
	}
	if n == 1 {
		return nil
	}
	if err := s.missing(ctx, "revoke", id); !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil // already revoked
}

// RevokeSubject implements [store.Store]. It locks the subject's slot, as
// Create does, so the two are serialised per subject.
func (s *Store) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := store.ValidReason(reason, at); err != nil {
		return nil, s.errs.Wrap(ctx, "revoke subject", err)
	}
	if err := store.ValidSubject(subject); err != nil {
		return nil, s.errs.Wrap(ctx, "revoke subject", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var ids []store.ID
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var slot uint16
		if err := tx.StmtContext(ctx, s.stmts.lock).QueryRowContext(ctx, lockSlot(subject)).Scan(&slot); err != nil {
			return err
		}
		var err error
		// Expired by at or not: by another replica's clock it may be live.
		if ids, err = s.revokeLive(ctx, tx, subject, except, 0, reason, at, time.Time{}); err != nil {
			return err
		}
		return s.appendEvents(ctx, tx, []store.Event{{Type: store.EventSubjectRevoked, Subject: subject, Except: except, Reason: reason, At: at}})
	})
	if err != nil {
		return nil, s.err(ctx, "revoke subject", err)
	}
	return ids, nil
}

// List implements [store.Store] from the subject index. Revoked rows are
// skipped by the index's revoked_at column, expired ones by the deadline,
// and deleted by Sweep: there are no index entries to forget.
func (s *Store) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := store.ValidSubject(subject); err != nil {
		return nil, s.errs.Wrap(ctx, "list", err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.stmts.live.QueryContext(ctx, []byte(subject), store.UnixNano(now))
	if err != nil {
		return nil, s.err(ctx, "list", err)
	}
	defer rows.Close()
	recs, err := sqlstore.Collect(rows, func(rows *sql.Rows) (*store.Record, error) { return scanRecord(rows) })
	if err != nil {
		return nil, s.err(ctx, "list", err)
	}
	return recs, nil
}

// Sweep implements [store.Sweeper]. Each step reads up to Options.SweepBatch
// due IDs through the deadline index without locking anything, then deletes
// them by primary key in chunks, re-checking each deadline, as autocommit
// statements that hold no lock while waiting for another — so a sweep never
// holds rows a writer needs while it waits. A chunk that InnoDB still picks
// as a deadlock victim is retried (counted in [Store.Stats]). Each step
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
		found, deleted, err := s.sweepStep(ctx, cutoff)
		total += deleted
		if err != nil {
			return total, s.err(ctx, "sweep", err)
		}
		if found < s.batch {
			return total, nil
		}
	}
}

// sweepChunk is how many rows one DELETE names: small, so a statement
// holds few row locks at once.
const sweepChunk = 50

func (s *Store) sweepStep(ctx context.Context, cutoff int64) (found, deleted int, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, sqlDue, cutoff, s.batch)
	if err != nil {
		return 0, 0, err
	}
	ids, err := collectIDs(rows)
	if err != nil {
		return 0, 0, err
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), sweepChunk)]
		ids = ids[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		for _, id := range chunk {
			args = append(args, id[:])
		}
		args = append(args, cutoff)
		q := `DELETE FROM latch_sessions WHERE id IN (?` + strings.Repeat(", ?", len(chunk)-1) + `) AND deadline <= ?`
		var n int64
		if err := s.retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		}); err != nil {
			return len(chunk), deleted, err
		}
		deleted += int(n)
		found += len(chunk)
	}
	return found, deleted, nil
}

// Ping implements [store.Pinger]: a round trip to the server, bounded by
// the per-call deadline.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.err(ctx, "ping", s.db.PingContext(ctx))
}

// KeyringVersion implements [store.KeyringVersioner]: the version alone,
// without the blob.
func (s *Store) KeyringVersion(ctx context.Context) (uint64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var version int64
	err := s.db.QueryRowContext(ctx, sqlKeyringVersion).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.db.QueryRowContext(ctx, sqlLoadKeyring).Scan(&blob, &version)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.retry(ctx, func() error {
		var res sql.Result
		var err error
		if expect == 0 {
			res, err = s.db.ExecContext(ctx, sqlInsertKeyring, blob)
		} else {
			res, err = s.db.ExecContext(ctx, sqlUpdateKeyring, blob, int64(expect))
		}
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return s.err(ctx, "save keyring", err)
	}
	if n != 1 {
		return s.errs.Verdict("save keyring", store.ErrConflict)
	}
	return nil
}
