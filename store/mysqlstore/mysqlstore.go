package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// Defaults applied by [Open] for zero Options fields.
const (
	DefaultOpTimeout      = 2 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultSweepBatch     = 500
	DefaultMaxOpenConns   = 16
)

// Options configures a [Store]. The zero value is valid: the defaults
// above and migrations applied on [Open].
type Options struct {
	// OpTimeout bounds every Store call (waiting for a connection and
	// retries included) beyond the caller's own context, so an unreachable
	// database fails closed with ErrUnavailable instead of hanging.
	// Default 2 s; negative disables it.
	OpTimeout time.Duration
	// ConnectTimeout bounds dialling one connection, unless the DSN sets
	// timeout. Default 5 s.
	ConnectTimeout time.Duration
	// MaxOpenConns caps the pool (default 16); MaxIdleConns defaults to it.
	MaxOpenConns, MaxIdleConns int
	// ConnMaxLifetime closes connections older than this (default 1 h).
	ConnMaxLifetime time.Duration
	// SweepBatch is the number of rows one Sweep step deletes at most.
	// Default 500.
	SweepBatch int
	// SkipMigrations makes Open check that the schema is current instead of
	// migrating it, for deployments that migrate with a more privileged user
	// ([Migrate]). Open then fails if migrations are pending.
	SkipMigrations bool
}

func (o Options) withDefaults() Options {
	if o.OpTimeout == 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime == 0 {
		o.ConnMaxLifetime = time.Hour
	}
	return o
}

// Store is a [store.Store] on MySQL or MariaDB. It also implements
// [store.Sweeper], [store.Pinger] and [store.KeyStore]. All methods are safe
// for concurrent use. The zero Store is not usable; get one from [Open].
type Store struct {
	db        *sql.DB
	opTimeout time.Duration
	batch     int
	errs      sqlstore.Errors
	stmts     statements

	retries atomic.Int64 // transient conflicts (deadlocks, lock timeouts) retried
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Sweeper  = (*Store)(nil)
	_ store.Pinger   = (*Store)(nil)
	_ store.KeyStore = (*Store)(nil)
)

// errBadDSN is returned for a DSN that does not parse. It carries neither
// the DSN nor the parser's message, either of which may quote the password.
var errBadDSN = errors.New("mysqlstore: malformed DSN (not shown: it may contain a password); " +
	"expected mysql://user:password@host:3306/db?param=… or the driver's user:password@tcp(host:3306)/db")

// ParseDSN parses a mysql:// URL (mysql://user:password@host:3306/db?tls=true,
// parameters as the driver takes them) or a go-sql-driver DSN
// (user:password@tcp(host:3306)/db?…). It needs a database name. Errors
// never quote the DSN.
func ParseDSN(dsn string) (*mysql.Config, error) {
	if strings.HasPrefix(dsn, "mysql://") {
		u, err := url.Parse(dsn)
		if err != nil || u.Host == "" {
			return nil, errBadDSN
		}
		// The driver's own parser takes the parameters, so both forms
		// accept the same ones.
		cfg, err := mysql.ParseDSN("/?" + u.RawQuery)
		if err != nil {
			return nil, errBadDSN
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.Port() == "" {
			cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
		}
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil { // mysql://::0/db
			return nil, errBadDSN
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
			return nil, errors.New("mysqlstore: the DSN must name a database: mysql://user:password@host:3306/db")
		}
		return cfg, nil
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errBadDSN
	}
	// The driver takes any address between the parentheses ("tcp([)"
	// becomes "[:3306"); refuse one that is not host:port here rather
	// than report it as a server that cannot be reached.
	if cfg.Net == "tcp" {
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return nil, errBadDSN
		}
	}
	if cfg.DBName == "" {
		return nil, errors.New("mysqlstore: the DSN must name a database: user:password@tcp(host:3306)/db")
	}
	return cfg, nil
}

// Open connects to the MySQL or MariaDB server named by dsn (see
// [ParseDSN]), applies pending migrations (unless opts.SkipMigrations) and
// returns a Store that owns its pool: Close closes it.
//
// Open fails with an error matching [store.ErrUnavailable] when the server
// cannot be reached within ctx and Options.ConnectTimeout. No error it
// returns contains the password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = opts.ConnectTimeout
	}
	// Socket deadlines bound every read and write on a connection, so a
	// server that stops answering fails a call within OpTimeout even where
	// no context deadline is set (Get, see there).
	if opts.OpTimeout > 0 {
		if cfg.ReadTimeout == 0 {
			cfg.ReadTimeout = opts.OpTimeout
		}
		if cfg.WriteTimeout == 0 {
			cfg.WriteTimeout = opts.OpTimeout
		}
	}
	// Statements are prepared once per connection and sent as binary
	// protocol: one round trip per call, integers not parsed from text.
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	cfg.ParseTime = false
	cfg.Logger = mysql.Logger(silent{})
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Strict: an oversized value is an error, never silently truncated
	// (Validate refuses it first anyway).
	if _, set := cfg.Params["sql_mode"]; !set {
		cfg.Params["sql_mode"] = "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
	}
	s := &Store{opTimeout: opts.OpTimeout, batch: opts.SweepBatch, errs: errorsFor(cfg.Passwd)}
	// Every connection runs READ COMMITTED (no gap locks, so fewer lock
	// conflicts; each statement sees what committed before it), set once
	// when it connects rather than before every transaction. MySQL 8 and
	// MariaDB ≥ 11.1 call the variable transaction_isolation, older
	// MariaDB tx_isolation.
	for _, v := range []string{"transaction_isolation", "tx_isolation"} {
		c := cfg.Clone()
		c.Params[v] = "'READ-COMMITTED'"
		connector, err := mysql.NewConnector(c)
		if err != nil {
			return nil, errBadDSN
		}
		s.db = sql.OpenDB(connector)
		s.db.SetMaxOpenConns(opts.MaxOpenConns)
		s.db.SetMaxIdleConns(opts.MaxIdleConns)
		s.db.SetConnMaxLifetime(opts.ConnMaxLifetime)
		cctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
		err = s.db.PingContext(cctx)
		cancel()
		if errNumber(err) == errUnknownVariable {
			s.db.Close()
			continue
		}
		if err != nil {
			s.db.Close()
			return nil, s.err(cctx, "open", err)
		}
		break
	}
	if err := s.setup(ctx, opts, cfg.DBName); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) setup(ctx context.Context, opts Options, dbName string) error {
	cctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if !opts.SkipMigrations {
		if _, err := migrate(ctx, s.db, dbName); err != nil {
			return s.err(ctx, "migrate", err)
		}
	} else {
		v, err := currentVersion(cctx, s.db)
		if err != nil {
			return s.err(cctx, "open", err)
		}
		if v < SchemaVersion() {
			return fmt.Errorf("mysqlstore: database %q is at schema version %d, this build needs %d; run mysqlstore.Migrate first", dbName, v, SchemaVersion())
		}
	}
	stmts, err := prepare(cctx, s.db)
	if err != nil {
		return s.err(cctx, "open", err)
	}
	s.stmts = stmts
	return nil
}

// DB returns the store's connection pool, for health checks and metrics
// (DB().Stats()). Most users won't need it.
func (s *Store) DB() *sql.DB { return s.db }

// Stats are counters of a Store since Open.
type Stats struct {
	// Retries counts transient conflicts (InnoDB deadlocks and lock wait
	// timeouts) that a call retried instead of failing.
	Retries int64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats { return Stats{Retries: s.retries.Load()} }

// Close closes the pool; it waits for connections in use to be returned.
func (s *Store) Close() error {
	s.stmts.close()
	return s.db.Close()
}

// withTimeout bounds one call by the store's per-call deadline.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.opTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opTimeout)
}

// MySQL error numbers the store acts on.
const (
	errUnknownVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE
	errDupEntry        = 1062 // ER_DUP_ENTRY
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	errLockDeadlock    = 1213 // ER_LOCK_DEADLOCK
)

func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// classify maps driver errors to the contract: no rows → ErrNotFound,
// duplicate key → ErrExists; anything else (network, timeout, cancelled
// context, server error) is ErrUnavailable, so the manager fails closed.
func classify(err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case errNumber(err) == errDupEntry:
		return store.ErrExists
	}
	return nil
}

func errorsFor(password string) sqlstore.Errors {
	return sqlstore.Errors{Pkg: "mysqlstore", Password: password, Classify: classify}
}

func (s *Store) err(ctx context.Context, op string, err error) error {
	return s.errs.Wrap(ctx, op, err)
}

// transient reports an error InnoDB resolves by rolling the statement or
// transaction back: running it again is the fix.
func transient(err error) bool {
	n := errNumber(err)
	return n == errLockDeadlock || n == errLockWaitTimeout
}

// maxAttempts bounds the retries of one call; the per-call deadline bounds
// them in time.
const maxAttempts = 50

// retry runs f until it succeeds, fails with a non-transient error, or
// ctx ends. f must be safe to run again after a transient failure: a
// single statement or a whole transaction, both rolled back by InnoDB.
func (s *Store) retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !transient(err) || attempt == maxAttempts {
			return err
		}
		s.retries.Add(1)
		// A short random pause, growing with the attempts, so the
		// transactions that collided do not collide again in lockstep.
		d := time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(time.Millisecond)))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
	}
}

// silent drops the driver's log lines: every failure also reaches the
// caller as an error, and a log line is no place for connection detail.
type silent struct{}

func (silent) Print(...any) {}
