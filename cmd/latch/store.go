package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/boltstore"
	"github.com/latch-sessions/latch/store/memstore"
	"github.com/latch-sessions/latch/store/mysqlstore"
	"github.com/latch-sessions/latch/store/pgstore"
	"github.com/latch-sessions/latch/store/redisstore"
)

// openedStore is a store opened from a --store value.
type openedStore struct {
	store.Store
	close    func() error
	boltPath string // set for the embedded store
	memory   bool
	describe string // for messages: never includes a password
}

func (s *openedStore) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// connectTimeout bounds connecting to a network store at start.
const connectTimeout = 10 * time.Second

// storeTarget is what a --store value names, before anything is opened.
type storeTarget struct {
	kind   string // "bolt", "memory", "redis", "postgres" or "mysql"
	scheme string // the URL scheme, lower case ("bolt" for a plain path)
	path   string // the bbolt file, for kind "bolt"
}

// parseStore reads a --store value (see openStore) without opening
// anything. Its errors are usage errors that quote at most the scheme.
func parseStore(u string) (storeTarget, error) {
	scheme, rest, hasScheme := strings.Cut(u, ":")
	if !hasScheme || len(scheme) == 1 { // a plain path (or a Windows drive letter)
		scheme, rest = "bolt", u
	}
	t := storeTarget{scheme: strings.ToLower(scheme)}
	switch t.scheme {
	case "bolt", "bbolt":
		t.kind, t.path = "bolt", rest
		if u == "" {
			t.path = filepath.Join(defaultDataDir, "latch.db")
		}
		if t.path == "" {
			return t, usageErrorf("--store bolt: needs a file path").hint("e.g. --store bolt:./latch-data/latch.db")
		}
	case "memory", "mem":
		if rest != "" {
			return t, usageErrorf("--store memory: takes no path")
		}
		t.kind = "memory"
	case "redis", "rediss", "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
		t.kind = "redis"
	case "postgres", "postgresql":
		t.kind = "postgres"
	case "mysql":
		t.kind = "mysql"
	default:
		return t, usageErrorf("unknown --store scheme %q", scheme).
			hint("use a bbolt file path, memory:, redis://…, redis-cluster://…, redis-sentinel://…, postgres://… or mysql://…")
	}
	return t, nil
}

// openStore opens the store named by u:
//
//	""                          the embedded bbolt file latch-data/latch.db
//	memory:                     in memory (tests, trying things out)
//	bolt:PATH, or a plain path  a bbolt file
//	redis://, rediss://, redis-sentinel://, redis-cluster:// (and rediss-…)
//	postgres://, postgresql://
//	mysql://user:password@host:3306/db (MySQL or MariaDB)
func openStore(ctx context.Context, u string) (*openedStore, error) {
	t, err := parseStore(u)
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case "bolt":
		path := t.path
		s, err := boltstore.Open(path, nil)
		if err != nil {
			e := errorf("opening the store: %v", err)
			if errors.Is(err, boltstore.ErrLocked) {
				e.hint("another latch serve has %s open; stop it, or use another file with --store", path)
			}
			return nil, e
		}
		return &openedStore{Store: s, close: s.Close, boltPath: path, describe: "bbolt " + path}, nil
	case "memory":
		return &openedStore{Store: memstore.New(), memory: true, describe: "memory (sessions are lost on exit)"}, nil
	case "redis":
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		s, err := redisstore.Open(cctx, u)
		if err != nil {
			return nil, storeOpenError("Redis", u, err)
		}
		return &openedStore{Store: s, close: s.Close, describe: t.scheme}, nil
	case "postgres":
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		s, err := pgstore.Open(cctx, u, pgstore.Options{})
		if err != nil {
			return nil, storeOpenError("PostgreSQL", u, err)
		}
		return &openedStore{Store: s, close: s.Close, describe: "postgres"}, nil
	case "mysql":
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		s, err := mysqlstore.Open(cctx, u, mysqlstore.Options{})
		if err != nil {
			return nil, storeOpenError("MySQL", u, err)
		}
		return &openedStore{Store: s, close: s.Close, describe: "mysql"}, nil
	}
	panic("latch: parseStore returned kind " + t.kind)
}

// storeOpenError reports a network store that could not be opened in one
// line: for an unreachable server, where and why ("cannot reach Redis at
// 127.0.0.1:6379: connection refused"), not the chain of layers it passed
// through. The address is taken from the URL without its user and
// password.
func storeOpenError(kind, rawURL string, err error) *exitError {
	where := ""
	if pu, perr := url.Parse(rawURL); perr == nil && pu.Host != "" {
		where = " at " + pu.Host
	}
	if !errors.Is(err, store.ErrUnavailable) {
		return errorf("opening the %s store: %s", kind, lastLine(err)).hint("check the --store URL")
	}
	var (
		errno     syscall.Errno
		dnsErr    *net.DNSError
		serverErr interface {
			error
			SQLState() string // the server answered, and said no (pgconn.PgError)
		}
		myErr *mysql.MySQLError // the same, from MySQL or MariaDB
		why   string
	)
	switch {
	case errors.As(err, &serverErr), errors.As(err, &myErr):
		refusal := error(serverErr)
		if serverErr == nil {
			refusal = myErr
		}
		return errorf("%s%s refused the connection: %s", kind, where, refusal.Error()).hint("check the user, password and database in the --store URL")
	case errors.As(err, &dnsErr):
		why = "no such host " + dnsErr.Name
	case errors.As(err, &errno):
		why = errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		why = fmt.Sprintf("no answer within %v", connectTimeout)
	default:
		why = lastLine(err)
	}
	return errorf("cannot reach %s%s: %s", kind, where, why).
		hint("start %s, or point --store (LATCH_STORE) at a running one", kind)
}

// lastLine is the innermost message of err's "layer: layer: cause" chain,
// on one line.
func lastLine(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "store unavailable: "); i >= 0 {
		msg = msg[i+len("store unavailable: "):]
	}
	return strings.Join(strings.Fields(msg), " ")
}
