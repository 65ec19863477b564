package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/latch-sessions/latch/store"
)

func TestErrorScrubsPasswordAndClassifies(t *testing.T) {
	const pw = "hunter2-Sup3rSecret"
	m := Errors{Pkg: "x", Password: pw, Classify: func(err error) error {
		if strings.Contains(err.Error(), "dup") {
			return store.ErrExists
		}
		return nil
	}}
	ctx := t.Context()
	err := m.Wrap(ctx, "get", errors.New("login as u:"+pw+" failed"))
	if !errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), pw) {
		t.Fatalf("Wrap: %v", err)
	}
	if err := m.Wrap(ctx, "create", errors.New("dup key")); !errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Wrap of a classified error: %v", err)
	}
	if again := m.Wrap(ctx, "outer", err); again != err {
		t.Fatalf("Wrap re-wrapped an *Error: %v", again)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Wrap(done, "get", errors.New("driver: bad connection")); !errors.Is(err, context.Canceled) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Wrap on a done context: %v, want it to match context.Canceled too", err)
	}
}

func TestRowRecordRefusesCorruptRows(t *testing.T) {
	good := func() Row {
		return Row{ID: make([]byte, store.IDLen), Subject: []byte("s"), VerifierHash: make([]byte, 32), CSRFSecret: make([]byte, 32),
			RefreshKey: make([]byte, 32), RefreshCurrent: make([]byte, 32), RefreshPrevious: make([]byte, 32),
			RevokeReason: []byte{}, IP: []byte{}, UserAgent: []byte{}, ACR: []byte{}, AMR: []byte{}, Version: 1}
	}
	w := good()
	if _, err := w.Record(); err != nil {
		t.Fatalf("a well-formed row: %v", err)
	}
	w.ACR, w.AMR, w.JKT = []byte("urn:x"), []byte("pwd otp"), make([]byte, 32)
	w.JKT[0] = 1
	if r, err := w.Record(); err != nil || r.ACR != "urn:x" || !slices.Equal(r.AMR, []string{"pwd", "otp"}) || r.JKT[0] != 1 {
		t.Fatalf("a row with ACR, AMR and JKT: %v", err)
	}
	for name, f := range map[string]func(*Row){
		"short hash":       func(w *Row) { w.VerifierHash = w.VerifierHash[:31] },
		"NULL subject":     func(w *Row) { w.Subject = nil },
		"negative version": func(w *Row) { w.Version = -1 },
		"huge generation":  func(w *Row) { w.Generation = 1 << 32 },
		"long ID":          func(w *Row) { w.ID = make([]byte, store.IDLen+1) },
		"NULL acr":         func(w *Row) { w.ACR = nil },
		"NULL amr":         func(w *Row) { w.AMR = nil },
		"empty AMR value":  func(w *Row) { w.AMR = []byte("pwd  otp") },
		"short jkt":        func(w *Row) { w.JKT = make([]byte, 31) },
	} {
		w := good()
		f(&w)
		if _, err := w.Record(); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestStatements(t *testing.T) {
	got := Statements("-- a comment; with a semicolon\nCREATE TABLE t (\n  a int -- no; split\n);\n\nCREATE INDEX i ON t (a);\n")
	want := []string{"CREATE TABLE t (\n  a int -- no; split\n);", "CREATE INDEX i ON t (a);"}
	if !slices.Equal(got, want) {
		t.Fatalf("Statements = %q, want %q", got, want)
	}
}

func TestLoadMigrationsRefusesBadSets(t *testing.T) {
	for name, fs := range map[string]fstest.MapFS{
		"bad name": {"m/1_init.sql": {}},
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"empty":    {},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: LoadMigrations did not panic", name)
				}
			}()
			LoadMigrations(fs, "m", "test")
		}()
	}
	ms := LoadMigrations(fstest.MapFS{"m/0002_b.sql": {Data: []byte("B")}, "m/0001_a.sql": {Data: []byte("A")}}, "m", "test")
	if len(ms) != 2 || ms[0].Name != "0001_a.sql" || ms[1].SQL != "B" {
		t.Fatalf("LoadMigrations = %+v", ms)
	}
}

// TestRowChecksums: a row's checksums are checked while crc_version is its
// version, skipped when an older binary wrote it last (a lower
// crc_version) or before the checksums (NULL), and a crc_version above the
// version is damage.
func TestRowChecksums(t *testing.T) {
	id, err := store.NewID("alice", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Record{ID: id, Subject: "alice", Version: 3, IP: "192.0.2.1", ACR: "urn:x", AMR: []string{"pwd"}}
	r.JKT[0] = 1
	summed := func() Row {
		w := rowOf(r)
		w.Version = int64(r.Version)
		w.CRCMain = sql.Null[int64]{V: w.mainSum(), Valid: true}
		w.CRCRefresh = sql.Null[int64]{V: w.refreshSum(), Valid: true}
		w.CRCRevoke = sql.Null[int64]{V: w.revokeSum(), Valid: true}
		w.CRCVersion = sql.Null[int64]{V: 3, Valid: true}
		return w
	}
	w := summed()
	if _, err := w.Record(); err != nil {
		t.Fatalf("a row with current checksums: %v", err)
	}
	for name, f := range map[string]func(*Row){
		"ip":               func(w *Row) { w.IP = []byte("192.0.2.2") },
		"refresh_current":  func(w *Row) { w.RefreshCurrent = bytes.Clone(w.RefreshCurrent); w.RefreshCurrent[5] ^= 8 },
		"revoked_at":       func(w *Row) { w.RevokedAt ^= 1 << 40 },
		"crc_main":         func(w *Row) { w.CRCMain.V ^= 1 },
		"crc_version high": func(w *Row) { w.CRCVersion.V = 4 },
	} {
		w := summed()
		f(&w)
		if _, err := w.Record(); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s damaged: %v, want ErrCorrupt", name, err)
		}
	}
	w = summed()
	w.IP, w.CRCVersion.V = []byte("192.0.2.9"), 2 // an older binary wrote it last
	if got, err := w.Record(); err != nil || got.IP != "192.0.2.9" {
		t.Errorf("a row an older binary wrote: %v", err)
	}
	w = summed()
	w.CRCMain.Valid = false
	w.IP = []byte("192.0.2.9") // not covered while its checksum is NULL
	if _, err := w.Record(); err != nil {
		t.Errorf("a row without crc_main: %v", err)
	}
}

// BenchmarkRowRecord is the decoding of a typical row that every SQL read
// does, with its checksums checked and without them (a row from before
// the checksums): the difference is their cost per read.
//
//	go test -run - -bench RowRecord -benchmem ./store/internal/sqlstore/
func BenchmarkRowRecord(b *testing.B) {
	id, _ := store.NewID("user-1234@example.com", rand.Reader)
	r := &store.Record{ID: id, Subject: "user-1234@example.com", Version: 7, IP: "203.0.113.9",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		Data:      []byte(`{"cart":3,"theme":"dark"}`), Claims: []byte(`{"role":"user"}`)}
	w := rowOf(r)
	w.Version = 7
	summed := w
	summed.CRCMain = sql.Null[int64]{V: w.mainSum(), Valid: true}
	summed.CRCRefresh = sql.Null[int64]{V: w.refreshSum(), Valid: true}
	summed.CRCRevoke = sql.Null[int64]{V: w.revokeSum(), Valid: true}
	summed.CRCVersion = sql.Null[int64]{V: 7, Valid: true}
	for _, c := range []struct {
		name string
		w    Row
	}{{"checked", summed}, {"unsummed", w}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.w.Record(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
