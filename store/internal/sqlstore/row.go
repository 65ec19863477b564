package sqlstore

import (
	"bytes"
	"database/sql"
	"fmt"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/amr"
)

// Columns are the stored fields of a record, in the order [Row.Dest] and
// [Args] use them. The deadline column is derived ([Args] writes it
// before the checksums) and never read back.
const Columns = `id, subject, version, verifier_hash, csrf_secret,
	refresh_key, refresh_current, refresh_previous, refresh_rotated_at, refresh_generation,
	created_at, auth_time, last_seen_at, idle_expires_at, expires_at,
	revoked_at, revoke_reason, ip, user_agent, data, claims,
	acr, amr, jkt, crc_main, crc_refresh, crc_revoke, crc_version`

// NumColumns is the number of [Columns].
const NumColumns = 28

// Args are the parameters of every column after id, subject and version,
// in [Columns] order, with the deadline before the checksums (see
// checksum.go, crc_version excluded): what an INSERT (after id, subject
// and the literal version 1, before the literal crc_version 1) and a
// compare-and-swap UPDATE (after id and the expected version) bind. Empty Data and Claims are NULL; AMR is its values joined by spaces
// (package amr); an unbound JKT is NULL.
func Args(r *store.Record) []any {
	w := rowOf(r)
	return []any{
		r.VerifierHash[:], r.CSRFSecret[:],
		r.Refresh.Key[:], r.Refresh.Current[:], r.Refresh.Previous[:],
		store.UnixNano(r.Refresh.RotatedAt), int64(r.Refresh.Generation),
		store.UnixNano(r.CreatedAt), store.UnixNano(r.AuthTime), store.UnixNano(r.LastSeenAt),
		store.UnixNano(r.IdleExpiresAt), store.UnixNano(r.ExpiresAt),
		store.UnixNano(r.RevokedAt), []byte(r.RevokeReason), []byte(r.IP), []byte(r.UserAgent),
		nullable(r.Data), nullable(r.Claims),
		[]byte(r.ACR), []byte(amr.Join(r.AMR)), jkt(r.JKT),
		store.UnixNano(r.Deadline()),
		w.mainSum(), w.refreshSum(), w.revokeSum(),
	}
}

func nullable(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func jkt(k [32]byte) []byte {
	if k == [32]byte{} {
		return nil
	}
	return k[:]
}

// RevokeTime is the time a revocation records, as a column holds it. A
// zero time would read back as "not revoked", so it becomes the current
// time: a revocation is never lost to a missing timestamp (the contract
// lets a store substitute its clock for a zero time).
func RevokeTime(at time.Time) int64 {
	if at.IsZero() {
		at = time.Now()
	}
	return store.UnixNano(at)
}

// Row is one row of [Columns] as a driver returns it. Byte fields may be
// borrowed from the driver: [Row.Record] copies what it keeps.
type Row struct {
	ID, Subject, VerifierHash, CSRFSecret       []byte
	RefreshKey, RefreshCurrent, RefreshPrevious []byte
	Version, RotatedAt, Generation              int64
	CreatedAt, AuthTime, LastSeenAt             int64
	IdleExpiresAt, ExpiresAt, RevokedAt         int64
	RevokeReason, IP, UserAgent, Data, Claims   []byte
	ACR, AMR, JKT                               []byte
	CRCMain, CRCRefresh, CRCRevoke, CRCVersion  sql.Null[int64] // see checksum.go
}

// Dest returns scan destinations for [Columns], for database/sql's Scan.
func (w *Row) Dest() []any {
	return []any{&w.ID, &w.Subject, &w.Version, &w.VerifierHash, &w.CSRFSecret,
		&w.RefreshKey, &w.RefreshCurrent, &w.RefreshPrevious, &w.RotatedAt, &w.Generation,
		&w.CreatedAt, &w.AuthTime, &w.LastSeenAt, &w.IdleExpiresAt, &w.ExpiresAt,
		&w.RevokedAt, &w.RevokeReason, &w.IP, &w.UserAgent, &w.Data, &w.Claims,
		&w.ACR, &w.AMR, &w.JKT, &w.CRCMain, &w.CRCRefresh, &w.CRCRevoke, &w.CRCVersion}
}

// Record decodes the row. A row no store wrote (a wrong-length hash, a
// NULL in a NOT NULL column, a version or generation out of range, an AMR
// that amr.Split refuses, a checksum that does not match its columns) is
// store.ErrCorrupt: the caller reports it as ErrUnavailable, never as a
// record.
func (w *Row) Record() (*store.Record, error) {
	bad := false
	fixed := func(dst, src []byte) {
		if len(src) != len(dst) {
			bad = true
		}
		copy(dst, src)
	}
	str := func(b []byte) string {
		if b == nil {
			bad = true // NOT NULL columns
		}
		return string(b)
	}
	r := &store.Record{
		Subject:      str(w.Subject),
		Version:      uint64(w.Version),
		RevokeReason: str(w.RevokeReason),
		IP:           str(w.IP),
		UserAgent:    str(w.UserAgent),
		Data:         clone(w.Data),
		Claims:       clone(w.Claims),
		ACR:          str(w.ACR),
	}
	var ok bool
	if r.AMR, ok = amr.Split(str(w.AMR)); !ok {
		bad = true
	}
	if w.JKT != nil { // NULL: unbound
		fixed(r.JKT[:], w.JKT)
	}
	fixed(r.ID[:], w.ID)
	fixed(r.VerifierHash[:], w.VerifierHash)
	fixed(r.CSRFSecret[:], w.CSRFSecret)
	fixed(r.Refresh.Key[:], w.RefreshKey)
	fixed(r.Refresh.Current[:], w.RefreshCurrent)
	fixed(r.Refresh.Previous[:], w.RefreshPrevious)
	r.Refresh.RotatedAt = store.FromUnixNano(w.RotatedAt)
	r.Refresh.Generation = uint32(w.Generation)
	r.CreatedAt = store.FromUnixNano(w.CreatedAt)
	r.AuthTime = store.FromUnixNano(w.AuthTime)
	r.LastSeenAt = store.FromUnixNano(w.LastSeenAt)
	r.IdleExpiresAt = store.FromUnixNano(w.IdleExpiresAt)
	r.ExpiresAt = store.FromUnixNano(w.ExpiresAt)
	r.RevokedAt = store.FromUnixNano(w.RevokedAt)
	if bad || w.Version < 0 || w.Generation < 0 || w.Generation > 1<<32-1 {
		return nil, fmt.Errorf("%w: malformed row", store.ErrCorrupt)
	}
	if !w.sumsOK() {
		return nil, fmt.Errorf("%w: checksum mismatch", store.ErrCorrupt)
	}
	return r, nil
}

// clone copies b, returning nil for an empty or NULL value.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// ID decodes an ID column; a value of another length is store.ErrCorrupt.
func ID(b []byte) (store.ID, error) {
	var id store.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: malformed ID", store.ErrCorrupt)
	}
	copy(id[:], b)
	return id, nil
}

// Rows is what both drivers' result sets offer: pgx.Rows and *sql.Rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Collect reads every row of rows with read; the caller closes rows.
func Collect[R Rows, T any](rows R, read func(R) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := read(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ScanID reads a row of one ID column.
func ScanID[R Rows](rows R) (store.ID, error) {
	var b []byte
	if err := rows.Scan(&b); err != nil {
		return store.ID{}, err
	}
	return ID(b)
}
