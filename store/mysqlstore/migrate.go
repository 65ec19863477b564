package mysqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations lists the embedded migrations in version order; a malformed
// file name or a gap panics at init, caught by every test of the package.
var migrations = sqlstore.LoadMigrations(migrationFS, "migrations", "mysqlstore")

// SchemaVersion is the schema version this package's code needs: the
// version of its newest embedded migration.
func SchemaVersion() int { return migrations[len(migrations)-1].Version }

var dialect = sqlstore.Dialect{
	VersionTable: `CREATE TABLE IF NOT EXISTS latch_schema_migrations (
		version    INT          NOT NULL PRIMARY KEY,
		name       VARCHAR(255) NOT NULL,
		applied_at TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB`,
	Record: `INSERT INTO latch_schema_migrations (version, name) VALUES (?, ?)`,
	Expand: sqlstore.Statements,
}

// migrateLockTimeout is how long Migrate waits for a replica that is
// migrating the same database, in seconds.
const migrateLockTimeout = 60

// Migrate brings the latch_ tables of the database db is connected to up
// to [SchemaVersion] and returns the versions it applied (none if current).
// [Open] calls it unless Options.SkipMigrations is set.
//
// Replicas starting at once never race: Migrate holds a named lock
// (GET_LOCK, keyed by the database name) on one connection while it runs,
// so the first applies the migrations and the others wait and then find
// nothing to do. MySQL DDL is not transactional: every statement of a
// migration is written so that it can run again after a failure part way,
// and a version is recorded only once all of its statements ran. Migrate
// needs the CREATE, ALTER, INDEX and INSERT privileges on the database; the
// server needs only SELECT, INSERT, UPDATE and DELETE.
func Migrate(ctx context.Context, db *sql.DB) (applied []int, err error) {
	applied, err = migrate(ctx, db, "")
	if err != nil {
		return nil, errorsFor("").Wrap(ctx, "migrate", err)
	}
	return applied, nil
}

func migrate(ctx context.Context, db *sql.DB, dbName string) (applied []int, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dbName == "" {
		if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
			return nil, err
		}
	}
	lock := "latch_migrate:" + dbName
	if len(lock) > 64 { // GET_LOCK names are at most 64 characters
		lock = lock[:64]
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, migrateLockTimeout).Scan(&got); err != nil {
		return nil, err
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, errors.New("timed out waiting for another replica's migration lock")
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", lock)
	return sqlstore.Apply(ctx, connMigrator{conn}, dialect, migrations)
}

type connMigrator struct{ c *sql.Conn }

func (m connMigrator) Exec(ctx context.Context, q string, args ...any) error {
	_, err := m.c.ExecContext(ctx, q, args...)
	return err
}

func (m connMigrator) Applied(ctx context.Context) ([]int, error) {
	rows, err := m.c.QueryContext(ctx, "SELECT version FROM latch_schema_migrations")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// currentVersion returns the newest migration version recorded, or 0.
func currentVersion(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name = 'latch_schema_migrations'`).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(version) FROM latch_schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return int(v.Int64), nil
}
