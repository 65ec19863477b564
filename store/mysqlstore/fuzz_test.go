package mysqlstore

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseDSN: a DSN in either form is a driver config naming a database,
// or an error that shows nothing of the DSN's password; a mysql:// URL's
// config dials TCP with a port (3306 by default), and every config reads
// back the same from the driver's own form of it.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"mysql://root:pw@127.0.0.1:3306/test", "mysql://u:p%40ss-word@db.example/latch?tls=true&timeout=2s", "mysql://u@[::1]/d",
		"mysql://h/", "mysql://u:pw@h/a/b", "mysql://u:pw@h/d?parseTime=yes", "mysql://%zz", "mysql://", "mysql:///d",
		"root:hunter2-x@tcp(127.0.0.1:3306)/test", "u:p@unix(/run/mysqld/mysqld.sock)/d?charset=utf8mb4", "u:p@tcp(h)/", "@/d", "", "mysql://:0@0/00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		cfg, err := ParseDSN(dsn)
		if err != nil {
			pw := ""
			if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
				pw, _ = u.User.Password()
			} else if i := strings.LastIndex(dsn, "@"); i > 0 {
				if _, p, ok := strings.Cut(dsn[:i], ":"); ok {
					pw = p
				}
			}
			if len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(errBadDSN.Error()+"the DSN must name a database", pw) {
				t.Fatalf("ParseDSN(%q): the error shows the password: %v", dsn, err)
			}
			return
		}
		if cfg.DBName == "" {
			t.Fatalf("ParseDSN(%q): no database", dsn)
		}
		if strings.HasPrefix(dsn, "mysql://") {
			if cfg.Net != "tcp" || !strings.Contains(cfg.Addr, ":") || strings.Contains(cfg.DBName, "/") {
				t.Fatalf("ParseDSN(%q): net %q addr %q db %q", dsn, cfg.Net, cfg.Addr, cfg.DBName)
			}
		}
		if cfg.User == "" {
			// The driver's FormatDSN drops a password without a user (the
			// store dials with cfg itself, which keeps it).
			cfg.Passwd = ""
		}
		again, err := ParseDSN(cfg.FormatDSN())
		if err != nil {
			t.Fatalf("ParseDSN(%q): its driver form does not parse: %v", dsn, err)
		}
		if again.User != cfg.User || again.Passwd != cfg.Passwd || again.Addr != cfg.Addr || again.DBName != cfg.DBName || again.Net != cfg.Net {
			t.Fatalf("ParseDSN(%q): the driver form reads back differently", dsn)
		}
	})
}

// TestParseDSNRefusesBadAddress: found by FuzzParseDSN. The driver's parser
// made "tcp([)" the address "[:3306", and ParseDSN made the URL
// "mysql://::0/0" the address "::0": no dial can use either. Such a DSN is
// malformed, and said so before connecting.
func TestParseDSNRefusesBadAddress(t *testing.T) {
	for _, dsn := range []string{"([)/0", "u:p@tcp([)/db", "u:p@tcp([::1)/db", "mysql://::0/0"} {
		if cfg, err := ParseDSN(dsn); err != errBadDSN {
			t.Errorf("ParseDSN(%q) = address %q, %v; want errBadDSN", dsn, cfg.Addr, err)
		}
	}
	for _, dsn := range []string{"u:p@tcp(127.0.0.1:3306)/db", "u:p@tcp([::1]:3306)/db", "u:p@tcp(db.example)/db", "u:p@/db"} {
		if _, err := ParseDSN(dsn); err != nil {
			t.Errorf("ParseDSN(%q): %v", dsn, err)
		}
	}
}
