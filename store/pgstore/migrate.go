package pgstore

import (
	"context"
	"embed"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations lists the embedded migrations in version order; a malformed
// file name or a gap panics at init, caught by every test of the package.
var migrations = sqlstore.LoadMigrations(migrationFS, "migrations", "pgstore")

// SchemaVersion is the schema version this package's code needs: the
// version of its newest embedded migration.
func SchemaVersion() int { return migrations[len(migrations)-1].Version }

// Advisory-lock class IDs (the first argument of the two-int4 form of
// pg_advisory_lock), so latch's locks do not collide with an application's
// single-bigint advisory locks.
const (
	lockClassMigrate = 0x6c61746d // "latm"
	lockClassSubject = 0x6c617473 // "lats"
	lockClassEvents  = 0x6c617465 // "late": taken by the events_order trigger (0002_events.sql)
)

// Migrate brings schema up to [SchemaVersion], creating the schema if it
// does not exist, and returns the versions it applied (none if the schema was
// current). [Open] calls it unless Options.SkipMigrations is set; call it
// yourself before [New], or from a deployment step ("latch migrate").
//
// All pending migrations run in one transaction under a transaction-scoped
// advisory lock keyed by the schema name, so replicas starting at once never
// race: the first applies them, the others wait and then find nothing to do.
// A failed migration rolls back completely. The applied versions are recorded
// in schema.schema_migrations.
//
// Migrate needs the CREATE privilege on the database (for a missing schema)
// or on the schema; the role the server runs as needs only SELECT, INSERT,
// UPDATE and DELETE on its tables once they exist. Migrate uses ctx as given,
// without the store's per-call timeout, and disables statement_timeout for its
// transaction: a future migration may legitimately take long.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (applied []int, err error) {
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	applied, err = migrate(ctx, pool, schema)
	if err != nil {
		return nil, wrapErr(ctx, "migrate", err, passwordOf(pool))
	}
	return applied, nil
}

// MigrateDSN is [Migrate] over a connection it opens to dsn and closes
// before returning. See [Open] for the DSN forms.
func MigrateDSN(ctx context.Context, dsn, schema string) (applied []int, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errBadDSN
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, wrapErr(ctx, "migrate", err, cfg.Password)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	applied, err = migrate(ctx, conn, schema)
	if err != nil {
		return nil, wrapErr(ctx, "migrate", err, cfg.Password)
	}
	return applied, nil
}

type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

func migrate(ctx context.Context, db beginner, schema string) (applied []int, err error) {
	q := pgx.Identifier{schema}.Sanitize()
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		// The lock comes first: everything below must see what a replica
		// that held it before us committed.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1::int4, hashtext($2)::int4)", int32(lockClassMigrate), schema); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			// Only when missing: CREATE SCHEMA IF NOT EXISTS would demand
			// the database CREATE privilege even for an existing schema.
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+q); err != nil {
				return err
			}
		}
		applied, err = sqlstore.Apply(ctx, pgMigrator{tx, q}, sqlstore.Dialect{
			VersionTable: `CREATE TABLE IF NOT EXISTS ` + q + `.schema_migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now())`,
			Record: "INSERT INTO " + q + ".schema_migrations (version, name) VALUES ($1, $2)",
			// One file, one Exec: PostgreSQL runs several statements (and
			// function bodies with semicolons) in one simple query.
			Expand: func(sql string) []string { return []string{strings.ReplaceAll(sql, "{{schema}}", q)} },
		}, migrations)
		return err
	})
	return applied, err
}

// currentVersion returns the newest migration version recorded in schema,
// or 0 if it has none.
func currentVersion(ctx context.Context, pool *pgxpool.Pool, schema string) (int, error) {
	var reg *string
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::text", pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&reg); err != nil {
		return 0, err
	}
	if reg == nil {
		return 0, nil
	}
	var v *int32
	if err := pool.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{schema}.Sanitize()+".schema_migrations").Scan(&v); err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return int(*v), nil
}

// checkSchema refuses schema names PostgreSQL would truncate or reject.
func checkSchema(schema string) error {
	switch {
	case schema == "":
		return errors.New("pgstore: empty schema name")
	case len(schema) > 63:
		return errors.New("pgstore: schema name longer than 63 bytes (PostgreSQL would truncate it)")
	case strings.ContainsRune(schema, 0):
		return errors.New("pgstore: schema name contains NUL")
	}
	return nil
}

// pgMigrator runs the shared migration runner inside migrate's
// transaction, which holds the advisory lock.
type pgMigrator struct {
	tx pgx.Tx
	q  string // the quoted schema
}

func (m pgMigrator) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := m.tx.Exec(ctx, sql, args...)
	return err
}

func (m pgMigrator) Applied(ctx context.Context) ([]int, error) {
	rows, err := m.tx.Query(ctx, "SELECT version FROM "+m.q+".schema_migrations")
	if err != nil {
		return nil, err
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = int(v)
	}
	return out, err
}
