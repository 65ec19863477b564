package sqltest

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// RowCorrupter is a storetest.Corrupter on a SQL store's session row,
// through a raw connection beside the store: a record's stored form is its
// columns one after another (bigints as 8 big-endian bytes, NULLs as
// nothing), and Flip rewrites one column with one byte changed. It leaves
// out the columns a store does not checksum (store/internal/sqlstore's
// checksum.go): id (the key: a changed one names another row), version,
// crc_version and deadline.
type RowCorrupter struct {
	DB    *sql.DB
	Table string             // the sessions table, qualified as the statements need
	Param func(n int) string // the n-th placeholder: "$1" or "?"
}

// corruptible lists the columns Flip reaches, and whether each is a bigint.
var corruptible = []struct {
	name   string
	bigint bool
}{
	{"subject", false}, {"verifier_hash", false}, {"csrf_secret", false},
	{"refresh_key", false}, {"refresh_current", false}, {"refresh_previous", false},
	{"refresh_rotated_at", true}, {"refresh_generation", true},
	{"created_at", true}, {"auth_time", true}, {"last_seen_at", true}, {"idle_expires_at", true}, {"expires_at", true},
	{"revoked_at", true}, {"revoke_reason", false}, {"ip", false}, {"user_agent", false},
	{"data", false}, {"claims", false}, {"acr", false}, {"amr", false}, {"jkt", false},
	{"crc_main", true}, {"crc_refresh", true}, {"crc_revoke", true},
}

// columns reads the corruptible columns of id's row: []byte, int64 or nil.
func (c RowCorrupter) columns(t *testing.T, id store.ID) []any {
	t.Helper()
	names := ""
	ints := make([]sql.NullInt64, len(corruptible))
	blobs := make([][]byte, len(corruptible))
	dest := make([]any, len(corruptible))
	for i, col := range corruptible {
		if i > 0 {
			names += ", "
		}
		names += col.name
		if col.bigint {
			dest[i] = &ints[i]
		} else {
			dest[i] = &blobs[i]
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE id = %s", names, c.Table, c.Param(1))
	if err := c.DB.QueryRowContext(context.Background(), q, id[:]).Scan(dest...); err != nil {
		t.Fatalf("raw read: %v", err)
	}
	out := make([]any, len(corruptible))
	for i, col := range corruptible {
		switch {
		case col.bigint && ints[i].Valid:
			out[i] = ints[i].Int64
		case !col.bigint && blobs[i] != nil:
			out[i] = blobs[i]
		}
	}
	return out
}

func width(v any) int {
	switch v := v.(type) {
	case int64:
		return 8
	case []byte:
		return len(v)
	}
	return 0
}

func (c RowCorrupter) Size(t *testing.T, _ store.Store, id store.ID) int {
	n := 0
	for _, v := range c.columns(t, id) {
		n += width(v)
	}
	return n
}

func (c RowCorrupter) Flip(t *testing.T, _ store.Store, id store.ID, i int, mask byte) {
	t.Helper()
	for k, v := range c.columns(t, id) {
		if w := width(v); i >= w {
			i -= w
			continue
		}
		switch x := v.(type) {
		case int64:
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(x))
			b[i] ^= mask
			v = int64(binary.BigEndian.Uint64(b[:]))
		case []byte:
			x[i] ^= mask
		}
		q := fmt.Sprintf("UPDATE %s SET %s = %s WHERE id = %s", c.Table, corruptible[k].name, c.Param(1), c.Param(2))
		if _, err := c.DB.ExecContext(context.Background(), q, v, id[:]); err != nil {
			t.Fatalf("raw write of %s: %v", corruptible[k].name, err)
		}
		return
	}
	t.Fatalf("byte %d is past the row", i)
}

// CheckUnsummedRows is the rolling-upgrade test of the checksums: a row
// whose checksum columns are NULL, as every row written before the
// checksum migration is, reads back and works; each write fills in the
// checksums of the columns it wrote; a write by a binary older than the
// checksums (which bumps the version and leaves them stale) does not make
// the row fail; and once Update has written the row, damage is detected.
// s is a store on c's table; rec is a fresh record with an IP.
func CheckUnsummedRows(t *testing.T, s store.Store, c RowCorrupter, rec *store.Record) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Create(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	q := fmt.Sprintf("UPDATE %s SET crc_main = NULL, crc_refresh = NULL, crc_revoke = NULL, crc_version = NULL WHERE id = %s", c.Table, c.Param(1))
	if _, err := c.DB.ExecContext(ctx, q, rec.ID[:]); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, rec.ID)
	if err != nil {
		t.Fatalf("Get of a row without checksums: %v", err)
	}
	if got.IP != rec.IP || got.Refresh.Current != rec.Refresh.Current || got.ACR != rec.ACR {
		t.Fatal("a row without checksums read back changed")
	}
	sums := func() (main, refresh, revoke bool) {
		t.Helper()
		var a, b, d sql.NullInt64
		q := fmt.Sprintf("SELECT crc_main, crc_refresh, crc_revoke FROM %s WHERE id = %s", c.Table, c.Param(1))
		if err := c.DB.QueryRowContext(ctx, q, rec.ID[:]).Scan(&a, &b, &d); err != nil {
			t.Fatal(err)
		}
		return a.Valid, b.Valid, d.Valid
	}

	rot := store.Rotation{ID: rec.ID, Expect: rec.Refresh.Current,
		Next:       store.Refresh{Key: rec.Refresh.Key, Previous: rec.Refresh.Current, RotatedAt: rec.CreatedAt.Add(time.Second), Generation: 1},
		LastSeenAt: rec.CreatedAt.Add(time.Second), IdleExpiresAt: rec.IdleExpiresAt.Add(time.Second)}
	rot.Next.Current[0] ^= 1
	after, err := s.RotateRefresh(ctx, rot)
	if err != nil {
		t.Fatalf("RotateRefresh of a row without checksums: %v", err)
	}
	if m, r, v := sums(); m || !r || v {
		t.Fatalf("after RotateRefresh: checksums main %v, refresh %v, revoke %v; want only refresh", m, r, v)
	}

	// An older binary's touch: new columns, no checksums, version bumped.
	q = fmt.Sprintf("UPDATE %s SET ip = %s, version = version + 1 WHERE id = %s", c.Table, c.Param(1), c.Param(2))
	if _, err := c.DB.ExecContext(ctx, q, []byte("198.51.100.7"), rec.ID[:]); err != nil {
		t.Fatal(err)
	}
	after, err = s.Get(ctx, rec.ID)
	if err != nil || after.IP != "198.51.100.7" {
		t.Fatalf("Get after an older binary's write: %v", err)
	}
	rot.Expect, rot.Next.Previous, rot.Next.Current[1], rot.Next.Generation = rot.Next.Current, rot.Next.Current, 1, 2
	if after, err = s.RotateRefresh(ctx, rot); err != nil || after.IP != "198.51.100.7" {
		t.Fatalf("RotateRefresh after an older binary's write: %v", err)
	}
	if m, r, v := sums(); m || !r || v {
		t.Fatalf("after RotateRefresh over an older binary's write: checksums main %v, refresh %v, revoke %v; want only refresh", m, r, v)
	}
	if _, err := s.Get(ctx, rec.ID); err != nil {
		t.Fatalf("Get after that rotation: %v", err)
	}

	if err := s.Update(ctx, after.Clone()); err != nil {
		t.Fatalf("Update of a row without checksums: %v", err)
	}
	if m, r, v := sums(); !m || !r || !v {
		t.Fatalf("after Update: checksums main %v, refresh %v, revoke %v; want all", m, r, v)
	}
	// The ip column's first byte: damage there is now detected.
	c.Flip(t, s, rec.ID, len(rec.Subject)+5*store.HashLen+2*8+5*8+8+len(after.RevokeReason), 1)
	if _, err := s.Get(ctx, rec.ID); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get of a damaged row after its checksums were filled in: %v", err)
	}
}
