package faults

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/latch-sessions/latch/internal/serveproc"
)

// The tests here restart a database server under load, so they never touch
// the shared ones other tests use (127.0.0.1:5432, :3306): each starts a
// private server of its own in a temporary directory, on a free port, run
// as the distribution's service user (PostgreSQL and MariaDB refuse to run
// as root), and removes it when the test ends.

// serviceDir makes a temporary directory owned by the service user u (a
// test's own TempDir lives under a root-only directory that u cannot
// enter), removed when t ends.
func serviceDir(t *testing.T, u *user.User) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "latch-faults-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serviceUser returns the named system user, or skips (fails under
// LATCH_REQUIRE_INTEGRATION=1) where it is missing or the test is not
// root (it must run the server as that user).
func serviceUser(t *testing.T, name string) *user.User {
	t.Helper()
	serveproc.Require(t, os.Geteuid() == 0, "a private "+name+" server is started as the "+name+" user, which needs root")
	u, err := user.Lookup(name)
	serveproc.Require(t, err == nil, fmt.Sprintf("no %s user (%v): install the server package", name, err))
	return u
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(serveproc.FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// runAs runs name with args as user u and returns its combined output.
func runAs(ctx context.Context, u *user.User, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", u.Username, "--", name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// pgServer is a private PostgreSQL cluster (initdb) of a test's own.
type pgServer struct {
	t    *testing.T
	u    *user.User
	bin  string // directory of initdb, pg_ctl
	dir  string // data directory (also the Unix socket directory)
	port int
}

// pgBin finds the newest PostgreSQL server binaries
// (/usr/lib/postgresql/<version>/bin on Debian), or skips.
func pgBin(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	serveproc.Require(t, false, "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: apt-get install postgresql")
	return ""
}

// startPostgres initdbs a cluster in a temporary directory and starts it on
// a free loopback port with trust authentication and fsync on (the
// default: an immediate shutdown must not lose a commit), stopping it
// (immediate) when t ends.
func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	u := serviceUser(t, "postgres")
	s := &pgServer{t: t, u: u, bin: pgBin(t), port: freePort(t)}
	s.dir = filepath.Join(serviceDir(t, u), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := runAs(ctx, u, filepath.Join(s.bin, "initdb"), "-D", s.dir, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"max_connections = 100\nshared_buffers = 16MB\nlogging_collector = off\n", s.port, s.dir)
	f, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	s.ctl("start")
	t.Cleanup(func() { s.ctlErr("stop", "-m", "immediate") })
	return s
}

// DSN is the URL of the cluster's postgres database.
func (s *pgServer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

func (s *pgServer) ctlErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := append(args, "-D", s.dir, "-w", "-t", "120", "-l", filepath.Join(filepath.Dir(s.dir), "log"))
	return runAs(ctx, s.u, filepath.Join(s.bin, "pg_ctl"), a...)
}

// ctl runs pg_ctl (waiting for it to finish) and fails t on an error.
func (s *pgServer) ctl(args ...string) {
	s.t.Helper()
	if out, err := s.ctlErr(args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.dir), "log"))
		s.t.Fatalf("pg_ctl %s: %v\n%s\nserver log (end):\n%s", strings.Join(args, " "), err, out, tail(string(log), 15))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop shuts the server down in mode ("fast": sessions are ended and
// the server checkpoints; "immediate": every process quits at once, as in
// a crash, and the next start replays the WAL).
func (s *pgServer) Stop(mode string) { s.t.Helper(); s.ctl("stop", "-m", mode) }

// Start starts the stopped server again on the same port and directory.
func (s *pgServer) Start() { s.t.Helper(); s.ctl("start") }

// mariaServer is a private mariadbd of a test's own: its data directory,
// port and socket.
type mariaServer struct {
	t    *testing.T
	u    *user.User
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startMariaDB installs a data directory (mariadb-install-db, root
// without a password) in a temporary directory and starts mariadbd on a
// free loopback port with its own socket, ignoring every option file
// (--no-defaults), with a database "latch". InnoDB flushes its log at
// every commit (the default), so a kill -9 loses nothing acknowledged.
func startMariaDB(t *testing.T) *mariaServer {
	t.Helper()
	u := serviceUser(t, "mysql")
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	_, err1 := os.Stat(bin)
	_, err2 := exec.LookPath("mariadb-install-db")
	serveproc.Require(t, err1 == nil && err2 == nil, "mariadbd or mariadb-install-db not installed: apt-get install mariadb-server")
	s := &mariaServer{t: t, u: u, bin: bin, dir: serviceDir(t, u), port: freePort(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(s.dir, "data"),
		"--user=mysql", "--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, tail(string(out), 15))
	}
	s.Start()
	t.Cleanup(s.Kill)
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", s.port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE latch"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return s
}

// Addr is the server's TCP address.
func (s *mariaServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the --store URL of its database "latch", at addr (the server's
// own address, or a proxy's).
func mariaURL(addr string) string { return "mysql://root@" + addr + "/latch" }

// Start starts mariadbd (again) and waits until it accepts connections.
func (s *mariaServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--no-defaults", "--datadir="+filepath.Join(s.dir, "data"),
		"--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(s.dir, "sock"),
		"--pid-file="+filepath.Join(s.dir, "pid"), "--log-error="+filepath.Join(s.dir, "err.log"),
		"--user=mysql", "--innodb-buffer-pool-size=32M", "--max-connections=200")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start mariadbd: %v", err)
	}
	s.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "err.log"))
			s.t.Fatalf("mariadbd exited at start:\n%s", tail(string(log), 15))
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			// The port opens once InnoDB recovery is done.
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mariadbd not listening on %s after 2 min", s.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends mariadbd with SIGKILL, as a crash would, and waits for it.
func (s *mariaServer) Kill() { s.signal(syscall.SIGKILL) }

// Shutdown ends mariadbd with SIGTERM (a clean shutdown) and waits for it.
func (s *mariaServer) Shutdown() { s.signal(syscall.SIGTERM) }

func (s *mariaServer) signal(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}
