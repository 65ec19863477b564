package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one embedded, versioned schema change.
type Migration struct {
	Version int
	Name    string // file name, e.g. "0001_init.sql"
	SQL     string // with the store's placeholders (e.g. {{schema}}) unexpanded
}

// LoadMigrations reads dir/*.sql from fsys, named NNNN_name.sql, in version
// order. It panics on a malformed name, a duplicate or missing version, or
// an empty list: all are programming errors the store's tests catch, and
// the files are embedded, so they cannot differ at run time.
func LoadMigrations(fsys fs.FS, dir, pkg string) []Migration {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		panic(pkg + ": " + err.Error())
	}
	var ms []Migration
	for _, p := range names {
		name := path.Base(p)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || len(num) != 4 {
			panic(pkg + ": migration file name must be NNNN_name.sql: " + name)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			panic(pkg + ": " + err.Error())
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			panic(fmt.Sprintf("%s: migration versions must run 1, 2, … without gaps or duplicates: %s", pkg, m.Name))
		}
	}
	if len(ms) == 0 {
		panic(pkg + ": no migrations embedded")
	}
	return ms
}

// Migrator is the connection (or transaction) a store's migrations run on,
// already holding the store's migration lock, so replicas starting at
// once never run one twice.
type Migrator interface {
	// Exec runs one statement.
	Exec(ctx context.Context, sql string, args ...any) error
	// Applied returns the versions recorded in the version table.
	Applied(ctx context.Context) ([]int, error)
}

// Dialect is how a database spells the runner's statements.
type Dialect struct {
	// VersionTable creates the version table (version, name, applied_at)
	// if it does not exist.
	VersionTable string
	// Record inserts (version, name) into it.
	Record string
	// Expand turns a migration file into the statements to run, each
	// sent on its own (MySQL runs one statement per call; PostgreSQL takes
	// the whole file).
	Expand func(sql string) []string
}

// Apply runs the migrations of ms not yet recorded, in order, each followed
// by its record, and returns the versions it applied.
func Apply(ctx context.Context, m Migrator, d Dialect, ms []Migration) (applied []int, err error) {
	if err := m.Exec(ctx, d.VersionTable); err != nil {
		return nil, err
	}
	done, err := m.Applied(ctx)
	if err != nil {
		return nil, err
	}
	for _, mg := range ms {
		if slices.Contains(done, mg.Version) {
			continue
		}
		for _, stmt := range d.Expand(mg.SQL) {
			if err := m.Exec(ctx, stmt); err != nil {
				return applied, fmt.Errorf("migration %s: %w", mg.Name, err)
			}
		}
		if err := m.Exec(ctx, d.Record, mg.Version, mg.Name); err != nil {
			return applied, fmt.Errorf("migration %s: %w", mg.Name, err)
		}
		applied = append(applied, mg.Version)
	}
	return applied, nil
}

// Statements splits a migration file into statements at lines that end
// with ";" (outside of which no ";" may end a line), dropping comment-only
// lines, for drivers that run one statement per call.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(sql) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
