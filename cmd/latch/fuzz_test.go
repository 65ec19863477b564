package main

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/store"
)

// FuzzParseStore: a --store value names one known backend or is a usage
// error (exit status 2) that quotes no more of it than its scheme; a bbolt
// target has a path, which is the value itself or what follows "bolt:".
func FuzzParseStore(f *testing.F) {
	for _, s := range []string{
		"", "memory:", "mem:", "memory:x", "bolt:", "bolt:./latch-data/latch.db", "BBolt:/tmp/x.db", "./x.db", `C:\data\latch.db`,
		"redis://127.0.0.1:6379/0", "rediss://u:p@h", "redis-cluster://a:7000,b:7001", "REDIS-SENTINEL://s1/m",
		"postgres://latch:secret@db/latch?sslmode=verify-full", "postgresql://h/db", "mysql://root:pw@127.0.0.1:3306/test",
		"ftp://x", "user:password@host", ":", "::", "mysql:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		tg, err := parseStore(u)
		if err != nil {
			var e *exitError
			if !errors.As(err, &e) || e.status != 2 {
				t.Fatalf("parseStore(%q): %v, want a usage error", u, err)
			}
			scheme, _, _ := strings.Cut(u, ":")
			switch e.msg {
			case fmt.Sprintf("unknown --store scheme %q", scheme), "--store bolt: needs a file path", "--store memory: takes no path":
			default:
				t.Fatalf("parseStore(%q): %q quotes more than the scheme", u, e.msg)
			}
			return
		}
		switch tg.kind {
		case "bolt":
			lower := strings.ToLower(u)
			switch {
			case u == "":
				if tg.path != filepath.Join(defaultDataDir, "latch.db") {
					t.Fatalf("default path %q", tg.path)
				}
			case strings.HasPrefix(lower, "bolt:") || strings.HasPrefix(lower, "bbolt:"):
				if _, rest, _ := strings.Cut(u, ":"); tg.path != rest {
					t.Fatalf("parseStore(%q): path %q", u, tg.path)
				}
			default:
				if tg.path != u {
					t.Fatalf("parseStore(%q): path %q, want the value itself", u, tg.path)
				}
			}
			if tg.path == "" {
				t.Fatalf("parseStore(%q): an empty bbolt path", u)
			}
		case "memory", "redis", "postgres", "mysql":
			if !strings.HasPrefix(strings.ToLower(u), tg.scheme+":") {
				t.Fatalf("parseStore(%q): scheme %q", u, tg.scheme)
			}
		default:
			t.Fatalf("parseStore(%q): kind %q", u, tg.kind)
		}
	})
}

// FuzzStoreOpenError: the one-line report of a store that could not be
// opened never shows the URL's password, whatever the URL.
func FuzzStoreOpenError(f *testing.F) {
	for _, s := range []string{
		"postgres://latch:s3cret-pw@db.example:5432/latch", "mysql://root:hunter2-x@127.0.0.1:3306/test",
		"redis://:only-a-password@h:6379", "redis-sentinel://u:p%40ss-word@s1,s2/m", "postgres://u:pw-pw-pw@[::1]:5432/x",
		"postgres://u:pw@@h", "redis://u:pass:word@h",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, unavailable bool) {
		pu, err := url.Parse(raw)
		if err != nil || pu.User == nil {
			return
		}
		pw, ok := pu.User.Password()
		if !ok || len(pw) < 6 || strings.Contains(pu.Host, pw) {
			return
		}
		cause := errors.New("dial tcp: connection refused")
		if unavailable {
			cause = fmt.Errorf("x: %w: %w", store.ErrUnavailable, cause)
		}
		e := storeOpenError("PostgreSQL", raw, cause)
		if out := e.msg + strings.Join(e.hints, "\n"); strings.Contains(out, pw) {
			t.Fatalf("storeOpenError(%q) shows the password: %s", raw, out)
		}
	})
}

// FuzzParseProxies: --trusted-proxies is a list of masked prefixes, one per
// non-empty entry, or a usage error; a single address is its own /32 or
// /128 (an IPv4-mapped IPv6 address as IPv4).
func FuzzParseProxies(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8,fd00::/8", " 127.0.0.1 , ::1", "::ffff:10.1.2.3", "10.1.2.3/8", "fe80::1%eth0", "", ",,", "1.2.3.4/33", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseProxies(s)
		if err != nil {
			var e *exitError
			if !errors.As(err, &e) || e.status != 2 {
				t.Fatalf("parseProxies(%q): %v, want a usage error", s, err)
			}
			return
		}
		n := 0
		for _, f := range strings.Split(s, ",") {
			if strings.TrimSpace(f) != "" {
				n++
			}
		}
		if len(ps) != n {
			t.Fatalf("parseProxies(%q): %d prefixes for %d entries", s, len(ps), n)
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() && p.Bits() == 128 {
				t.Fatalf("parseProxies(%q): prefix %v", s, p)
			}
		}
	})
}
