package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latch-sessions/latch/internal/faultnet"
	"github.com/latch-sessions/latch/internal/serveproc"
)

// pgDatabase creates a database of the test's own on the PostgreSQL named by
// LATCH_TEST_POSTGRES (default the local test server) and drops it when the
// test ends; it returns the server's address and the database's DSN with the
// host left for the caller to point at a proxy. Its own database keeps the
// suite's keyring (sealed under its own KEK) apart from every other test's.
func pgDatabase(t *testing.T) (addr string, dsn *url.URL) {
	t.Helper()
	raw := os.Getenv("LATCH_TEST_POSTGRES")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, raw)
	serveproc.Require(t, err == nil, fmt.Sprintf("PostgreSQL not reachable (%v): set LATCH_TEST_POSTGRES or start it", err))
	defer conn.Close(context.Background())
	name := fmt.Sprintf("latch_faults_%x", rand.Uint64())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, raw); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	addr = u.Host
	u.Path = "/" + name
	return addr, u
}

// pgCut is at least as long as the PostgreSQL store's call timeout (2 s),
// so that calls fail (503) during the cut rather than only wait.
const pgCut = 3 * time.Second

// proxies are the proxies of a deployment, one per replica.
type proxies []*faultnet.Proxy

func (ps proxies) Stall() {
	for _, p := range ps {
		p.Stall()
	}
}

func (ps proxies) Resume() {
	for _, p := range ps {
		p.Resume()
	}
}

// deployVia starts n replicas, each reaching the database at target
// through a proxy of its own; storeURL makes a replica's --store URL from
// its proxy's address.
func deployVia(t *testing.T, n int, target string, storeURL func(proxy string) string) (*deployment, proxies) {
	t.Helper()
	d := &deployment{}
	var ps proxies
	kek, key := randomKey(), randomKey()
	for range n {
		p := faultnet.NewProxy(t, target)
		ps = append(ps, p)
		o := serveproc.Options{Store: storeURL(p.Addr()), APIKey: key, Addr: serveproc.FreeAddr(t), Env: []string{"LATCH_KEK=" + kek}}
		d.opts = append(d.opts, o)
		d.srv = append(d.srv, serveproc.Start(t, o))
	}
	return d, ps
}

// TestPostgresNetworkCut runs two replicas on one PostgreSQL, each through
// its own proxy, and under load stalls both proxies (a network that drops
// everything: connections stay open, nothing arrives, no reset), then lets
// them forward again.
func TestPostgresNetworkCut(t *testing.T) {
	skipShort(t)
	addr, dsn := pgDatabase(t)
	d, proxies := deployVia(t, 2, addr, func(proxy string) string {
		u := *dsn
		u.Host = proxy
		return u.String()
	})
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			start := time.Now()
			proxies.Stall()
			time.Sleep(max(phase(), pgCut))
			proxies.Resume()
			h.Inject("postgres network cut", start, time.Now())
			time.Sleep(phase())
		}
	})
}

// TestPostgresRestart runs two replicas on a private PostgreSQL of the
// test's own and, under load, stops it (fast shutdown, then immediate
// shutdown: a crash, the WAL replayed at the next start), keeps it down
// for a phase and starts it again on the same port: nothing acknowledged
// may be lost, and every error must be 503.
func TestPostgresRestart(t *testing.T) {
	skipShort(t)
	pg := startPostgres(t)
	d := deploy(t, 2, pg.DSN())
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			for _, mode := range []string{"fast", "immediate"} {
				start := time.Now()
				pg.Stop(mode)
				time.Sleep(phase())
				pg.Start()
				h.Inject("postgres restart -m "+mode, start, time.Now())
				time.Sleep(phase())
			}
		}
	})
}
