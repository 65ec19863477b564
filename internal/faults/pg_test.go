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

// TestPostgresNetworkCut runs two replicas on one PostgreSQL, each through
// its own proxy, and under load stalls both proxies (a network that drops
// everything: connections stay open, nothing arrives, no reset), then lets
// them forward again.
func TestPostgresNetworkCut(t *testing.T) {
	skipShort(t)
	addr, dsn := pgDatabase(t)
	d := &deployment{}
	var proxies []*faultnet.Proxy
	kek, key := randomKey(), randomKey()
	for range 2 {
		p := faultnet.NewProxy(t, addr)
		proxies = append(proxies, p)
		u := *dsn
		u.Host = p.Addr()
		o := serveproc.Options{Store: u.String(), APIKey: key, Addr: serveproc.FreeAddr(t), Env: []string{"LATCH_KEK=" + kek}}
		d.opts = append(d.opts, o)
		d.srv = append(d.srv, serveproc.Start(t, o))
	}
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			start := time.Now()
			for _, p := range proxies {
				p.Stall()
			}
			time.Sleep(max(phase(), pgCut))
			for _, p := range proxies {
				p.Resume()
			}
			h.Inject("postgres network cut", start, time.Now())
			time.Sleep(phase())
		}
	})
}
