package sqlstore

import (
	"hash/crc32"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/amr"
)

// A row carries three CRC-32C checksums (Castagnoli, as store's codec), one
// per group of columns that one kind of statement writes, because the
// stores' statements edit rows in SQL, where neither PostgreSQL nor MySQL
// can compute a CRC-32C, and each statement knows from its own parameters
// every column of the groups it changes, never the rest:
//
//	crc_main     id, subject, verifier_hash, csrf_secret, created_at,
//	             auth_time, expires_at, ip, user_agent, data, claims, acr,
//	             amr, jkt (written by Create and Update)
//	crc_refresh  id, refresh_key, refresh_current, refresh_previous,
//	             refresh_rotated_at, refresh_generation, last_seen_at,
//	             idle_expires_at (Create, Update and RotateRefresh)
//	crc_revoke   revoked_at, revoke_reason (Create, Update, Revoke,
//	             RevokeSubject and eviction)
//
// So a rotation or revocation never recomputes a checksum over columns it
// did not write, and cannot launder damage to them.
//
// crc_version is the version the checksums were written at: every write of
// this package sets it to the version it writes, and the checksums are
// checked only while it equals version. A binary older than the checksums
// (a rolling upgrade) writes rows without them; its write bumps version
// and so turns the checks of that row off, instead of making them fail,
// until this package writes the row again: Create and Update write every
// checksum, and a rotation or revocation after such a write keeps only the
// checksum it wrote (the others become NULL). NULL checksums (rows from
// before migration 0005) are not checked. A crc_version above version is
// damage (no write lowers a version).
//
// Not covered: version and crc_version (damage there can turn the check of
// that row off or make compare-and-swap writes conflict; it cannot make a
// session pass), and deadline (derived, never read back: the manager
// judges the covered idle and absolute deadlines). The checksums are
// against accidental damage (a bit flipped on a disk or in memory;
// PostgreSQL checksums its pages only when initialised with
// --data-checksums), not against someone who can write the table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sum accumulates one group's checksum: every field length-prefixed, so
// the fields cannot shift into each other; each group starts with its own
// tag. Length prefixes and integers go through the table byte by byte, so
// that no scratch buffer escapes to crc32.Update (which would cost an
// allocation per checksum on every read).
type sum struct{ c uint32 }

func newSum(tag byte) sum {
	var s sum
	s.byte(tag)
	return s
}

// byte is crc32.Update of one byte, as crc32's generic code does it.
func (s *sum) byte(b byte) {
	c := ^s.c
	c = castagnoli[byte(c)^b] ^ (c >> 8)
	s.c = ^c
}

func (s *sum) bytes(b []byte) {
	n := uint64(len(b))
	for n >= 0x80 {
		s.byte(byte(n) | 0x80)
		n >>= 7
	}
	s.byte(byte(n))
	s.c = crc32.Update(s.c, castagnoli, b)
}

func (s *sum) int(n int64) {
	for i := 56; i >= 0; i -= 8 {
		s.byte(byte(n >> i))
	}
}

// mainSum, refreshSum and revokeSum are the checksums of w's groups.
func (w *Row) mainSum() int64 {
	s := newSum('m')
	for _, b := range [...][]byte{w.ID, w.Subject, w.VerifierHash, w.CSRFSecret} {
		s.bytes(b)
	}
	s.int(w.CreatedAt)
	s.int(w.AuthTime)
	s.int(w.ExpiresAt)
	for _, b := range [...][]byte{w.IP, w.UserAgent, w.Data, w.Claims, w.ACR, w.AMR, w.JKT} {
		s.bytes(b)
	}
	return int64(s.c)
}

func (w *Row) refreshSum() int64 {
	s := newSum('r')
	for _, b := range [...][]byte{w.ID, w.RefreshKey, w.RefreshCurrent, w.RefreshPrevious} {
		s.bytes(b)
	}
	for _, n := range [...]int64{w.RotatedAt, w.Generation, w.LastSeenAt, w.IdleExpiresAt} {
		s.int(n)
	}
	return int64(s.c)
}

func (w *Row) revokeSum() int64 {
	s := newSum('v')
	s.int(w.RevokedAt)
	s.bytes(w.RevokeReason)
	return int64(s.c)
}

// sumsOK reports whether every checksum w carries matches its columns,
// when they are current (see crc_version above).
func (w *Row) sumsOK() bool {
	switch {
	case !w.CRCVersion.Valid:
		return true
	case w.CRCVersion.V > w.Version:
		return false
	case w.CRCVersion.V < w.Version:
		return true // an older binary wrote the row last
	}
	return (!w.CRCMain.Valid || w.CRCMain.V == w.mainSum()) &&
		(!w.CRCRefresh.Valid || w.CRCRefresh.V == w.refreshSum()) &&
		(!w.CRCRevoke.Valid || w.CRCRevoke.V == w.revokeSum())
}

// rowOf is r's columns as [Args] binds them.
func rowOf(r *store.Record) Row {
	return Row{
		ID: r.ID[:], Subject: []byte(r.Subject), VerifierHash: r.VerifierHash[:], CSRFSecret: r.CSRFSecret[:],
		RefreshKey: r.Refresh.Key[:], RefreshCurrent: r.Refresh.Current[:], RefreshPrevious: r.Refresh.Previous[:],
		RotatedAt: store.UnixNano(r.Refresh.RotatedAt), Generation: int64(r.Refresh.Generation),
		CreatedAt: store.UnixNano(r.CreatedAt), AuthTime: store.UnixNano(r.AuthTime), LastSeenAt: store.UnixNano(r.LastSeenAt),
		IdleExpiresAt: store.UnixNano(r.IdleExpiresAt), ExpiresAt: store.UnixNano(r.ExpiresAt),
		RevokedAt: store.UnixNano(r.RevokedAt), RevokeReason: []byte(r.RevokeReason),
		IP: []byte(r.IP), UserAgent: []byte(r.UserAgent), Data: nullable(r.Data), Claims: nullable(r.Claims),
		ACR: []byte(r.ACR), AMR: []byte(amr.Join(r.AMR)), JKT: jkt(r.JKT),
	}
}

// SetRefreshSum and SetRevokeSum are the SET assignments of the checksum
// columns for a statement that writes only the refresh (revocation) group,
// whose new crc_refresh (crc_revoke) is placeholder p: the other groups'
// checksums stay if they were current, and crc_version follows the
// version. They read version before the write, so they come before the
// statement's version = version + 1 (MySQL assigns from left to right).
func SetRefreshSum(p string) string {
	return `crc_main = CASE WHEN crc_version = version THEN crc_main END,
		crc_revoke = CASE WHEN crc_version = version THEN crc_revoke END,
		crc_refresh = ` + p + `, crc_version = version + 1`
}

func SetRevokeSum(p string) string {
	return `crc_main = CASE WHEN crc_version = version THEN crc_main END,
		crc_refresh = CASE WHEN crc_version = version THEN crc_refresh END,
		crc_revoke = ` + p + `, crc_version = version + 1`
}

// RotationSum is crc_refresh of the row r leaves, for RotateRefresh to
// write with it.
func RotationSum(r store.Rotation) int64 {
	w := Row{ID: r.ID[:], RefreshKey: r.Next.Key[:], RefreshCurrent: r.Next.Current[:], RefreshPrevious: r.Next.Previous[:],
		RotatedAt: store.UnixNano(r.Next.RotatedAt), Generation: int64(r.Next.Generation),
		LastSeenAt: store.UnixNano(r.LastSeenAt), IdleExpiresAt: store.UnixNano(r.IdleExpiresAt)}
	return w.refreshSum()
}

// RevokeSum is crc_revoke of a row revoked at at (as [RevokeTime] gives
// it) with reason, for the revoking statements to write with it.
func RevokeSum(at int64, reason string) int64 {
	w := Row{RevokedAt: at, RevokeReason: []byte(reason)}
	return w.revokeSum()
}
