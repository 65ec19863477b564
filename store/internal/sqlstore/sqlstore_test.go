package sqlstore

import (
	"context"
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
