package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/deadline"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// DefaultSchema is the schema a zero Options uses.
const DefaultSchema = "latch"

// Defaults applied by [Open] and [New] for zero Options fields.
const (
	DefaultOpTimeout      = 2 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultSweepBatch     = 500
)

// Options configures a [Store]. The zero value is valid: schema "latch",
// pgxpool's pool defaults (or those set in the DSN), a 2 s deadline per call
// and migrations applied on [Open].
//
// Pool fields left zero keep the value from the DSN's pool_* parameters, or
// pgxpool's default; [New] ignores them (the caller configured its pool).
type Options struct {
	// Schema holds latch's tables; it is created by migrations if missing.
	// Default "latch". Tests use a schema each to stay isolated.
	Schema string

	// MaxConns caps the pool (pgxpool default: max(4, GOMAXPROCS)).
	MaxConns int32
	// MinConns connections are kept open even when idle.
	MinConns int32
	// MaxConnLifetime closes connections older than this (default 1 h).
	MaxConnLifetime time.Duration
	// MaxConnIdleTime closes connections idle longer than this (default 30 min).
	MaxConnIdleTime time.Duration
	// HealthCheckPeriod is how often idle connections are checked (default 1 min).
	HealthCheckPeriod time.Duration
	// ConnectTimeout bounds establishing one connection, unless the DSN sets
	// connect_timeout. Default 5 s.
	ConnectTimeout time.Duration

	// OpTimeout bounds every Store call (acquiring a connection included)
	// beyond the caller's own context, so an unreachable database fails
	// closed with ErrUnavailable instead of hanging. Default 2 s; negative
	// disables it. Get may run up to an eighth longer, and notices a
	// caller's cancellation when it starts (see Store.Get).
	OpTimeout time.Duration
	// StatementTimeout is set as the server-side statement_timeout of every
	// pooled connection opened by [Open], unless the DSN sets one in
	// options. Default: OpTimeout. Negative leaves the server's setting.
	StatementTimeout time.Duration

	// SweepBatch is the number of rows one Sweep statement deletes at most.
	// Default 500.
	SweepBatch int

	// SkipMigrations makes Open check that the schema is current instead of
	// migrating it, for deployments that run "latch migrate" with a more
	// privileged role. Open then fails if migrations are pending.
	SkipMigrations bool
}

func (o Options) withDefaults() Options {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = o.OpTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	return o
}

// Store is a [store.Store] on PostgreSQL. It also implements
// [store.Sweeper], [store.Pinger] and [store.KeyStore]. All methods are safe
// for concurrent use. The zero Store is not usable; get one from [Open] or
// [New].
type Store struct {
	pool      *pgxpool.Pool
	ownsPool  bool
	opTimeout time.Duration
	deadlines deadline.Deadlines // Get's; see there
	batch     int
	errs      sqlstore.Errors // scrubs the password from every message
	q         queries
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Sweeper  = (*Store)(nil)
	_ store.Pinger   = (*Store)(nil)
	_ store.KeyStore = (*Store)(nil)
)

// errBadDSN is returned for a DSN that does not parse. It deliberately
// carries neither the DSN nor the parser's message, either of which may
// quote the password.
var errBadDSN = errors.New("pgstore: malformed DSN (not shown: it may contain a password); " +
	"expected postgres://user:password@host:port/db?sslmode=… or key=value pairs")

// Open connects to the PostgreSQL server at dsn, applies pending migrations
// (unless opts.SkipMigrations) and returns a Store that owns its pool: Close
// closes it.
//
// dsn is a URL (postgres://user:password@host:5432/db?sslmode=verify-full)
// or a key=value string (host=… user=… dbname=…), as libpq accepts; unset
// parts come from the PG* environment variables. pgxpool's pool_max_conns,
// pool_min_conns, pool_max_conn_lifetime, pool_max_conn_idle_time and
// pool_health_check_period parameters are honoured; non-zero Options fields
// override them.
//
// Open fails with an error matching [store.ErrUnavailable] when the server
// cannot be reached within ctx and Options.ConnectTimeout. No error it
// returns contains the password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := checkSchema(opts.Schema); err != nil {
		return nil, err
	}
	cfg, err := poolConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	password := cfg.ConnConfig.Password
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrapErr(ctx, "open", err, password)
	}
	s, err := newStore(pool, opts, password)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownsPool = true
	if err := s.setup(ctx, opts); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// poolConfig parses dsn and applies opts (defaults filled in) to it. A DSN
// that does not parse is errBadDSN, which quotes neither the DSN nor the
// parser's message.
func poolConfig(dsn string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errBadDSN
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.MinConns > 0 {
		cfg.MinConns = opts.MinConns
	}
	if cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("pgstore: MinConns (%d) exceeds MaxConns (%d)", cfg.MinConns, cfg.MaxConns)
	}
	if opts.MaxConnLifetime > 0 {
		cfg.MaxConnLifetime = opts.MaxConnLifetime
	}
	if opts.MaxConnIdleTime > 0 {
		cfg.MaxConnIdleTime = opts.MaxConnIdleTime
	}
	if opts.HealthCheckPeriod > 0 {
		cfg.HealthCheckPeriod = opts.HealthCheckPeriod
	}
	if cfg.ConnConfig.ConnectTimeout == 0 && opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if opts.StatementTimeout > 0 && !strings.Contains(cfg.ConnConfig.RuntimeParams["options"], "statement_timeout") {
		// An empty statement_timeout= in the DSN sets nothing: it gets the
		// default like an absent one.
		if v := cfg.ConnConfig.RuntimeParams["statement_timeout"]; v == "" {
			cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
		}
	}
	return cfg, nil
}

func (s *Store) setup(ctx context.Context, opts Options) error {
	if !opts.SkipMigrations {
		if _, err := migrate(ctx, s.pool, opts.Schema); err != nil {
			return s.err(ctx, "migrate", err)
		}
		return nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	v, err := currentVersion(ctx, s.pool, opts.Schema)
	if err != nil {
		return s.err(ctx, "open", err)
	}
	if v < SchemaVersion() {
		return fmt.Errorf("pgstore: schema %q is at version %d, this build needs %d; run \"latch migrate\" (or pgstore.Migrate) first",
			opts.Schema, v, SchemaVersion())
	}
	return nil
}

// New returns a Store on an existing pool, which the caller keeps owning:
// Close does not close it. New neither connects nor migrates; call [Migrate]
// first. Pool-related Options fields are ignored.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	opts = opts.withDefaults()
	if err := checkSchema(opts.Schema); err != nil {
		return nil, err
	}
	return newStore(pool, opts, passwordOf(pool))
}

func newStore(pool *pgxpool.Pool, opts Options, password string) (*Store, error) {
	s := &Store{
		pool:      pool,
		opTimeout: opts.OpTimeout,
		batch:     opts.SweepBatch,
		errs:      errorsFor(password),
		q:         buildQueries(opts.Schema),
	}
	if s.opTimeout > 0 {
		s.deadlines.Init(s.opTimeout)
	}
	return s, nil
}

// Pool returns the store's connection pool, for health checks and metrics
// (Pool().Stat()). Most users won't need it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool if [Open] created it; it waits for connections in
// use to be returned.
func (s *Store) Close() error {
	if s.ownsPool {
		s.pool.Close()
	}
	return nil
}

// withTimeout bounds one call by the store's per-call deadline.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opTimeout)
}

func passwordOf(pool *pgxpool.Pool) string {
	if pool == nil {
		return ""
	}
	return pool.Config().ConnConfig.Password
}
