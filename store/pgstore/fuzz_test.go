package pgstore

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// dsnPassword is the password a DSN spells out, in either of its forms (a
// URL or key=value pairs), or "".
func dsnPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		pw, _ := u.User.Password()
		return pw
	}
	for _, kv := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(kv, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// FuzzPoolConfig: a DSN that pgx does not parse is errBadDSN, which shows
// nothing of it; one it parses gets the Options applied as documented
// (pool bounds, timeouts, a statement_timeout unless the DSN sets one) and
// keeps its password for the error scrubber.
func FuzzPoolConfig(f *testing.F) {
	for _, s := range []string{
		"postgres://latch:s3cret-pw@127.0.0.1:5432/test?sslmode=disable", "postgresql://u@h/db?pool_max_conns=3&pool_min_conns=1",
		"host=h user=u password=hunter2-pw dbname=d", "postgres://u:p@h/d?statement_timeout=100", "postgres://u:p@h/d?options=-c%20statement_timeout%3D5",
		"postgres://[::1]:5432/x?connect_timeout=3", "postgres://u:pw@h:99999/d", "postgres://%zz", "host='a b' password='x y'", "",
	} {
		f.Add(s, int32(0), int32(0), int64(0))
		f.Add(s, int32(4), int32(2), int64(time.Second))
	}
	f.Fuzz(func(t *testing.T, dsn string, maxConns, minConns int32, stmt int64) {
		opts := Options{MaxConns: maxConns, MinConns: minConns, StatementTimeout: time.Duration(stmt)}.withDefaults()
		cfg, err := poolConfig(dsn, opts)
		if err != nil {
			if pw := dsnPassword(dsn); len(pw) >= 4 && strings.Contains(err.Error(), pw) {
				t.Fatalf("poolConfig(%q): the error shows the password: %v", dsn, err)
			}
			if err != errBadDSN && !strings.Contains(err.Error(), "MinConns") {
				t.Fatalf("poolConfig(%q): %v", dsn, err)
			}
			return
		}
		if maxConns > 0 && cfg.MaxConns != maxConns {
			t.Fatalf("MaxConns %d, want %d", cfg.MaxConns, maxConns)
		}
		if minConns > 0 && cfg.MinConns != minConns {
			t.Fatalf("MinConns %d, want %d", cfg.MinConns, minConns)
		}
		if cfg.MinConns > cfg.MaxConns {
			t.Fatalf("MinConns %d above MaxConns %d", cfg.MinConns, cfg.MaxConns)
		}
		if opts.ConnectTimeout > 0 && cfg.ConnConfig.ConnectTimeout == 0 {
			t.Fatal("no connect timeout")
		}
		if opts.StatementTimeout > 0 && !strings.Contains(cfg.ConnConfig.RuntimeParams["options"], "statement_timeout") &&
			cfg.ConnConfig.RuntimeParams["statement_timeout"] == "" {
			t.Fatal("no statement timeout")
		}
	})
}
