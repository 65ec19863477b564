// Package sqltest is the test harness latch's SQL stores share: the DSN of
// the test server from the environment (skip when it is unreachable, fail
// when LATCH_REQUIRE_INTEGRATION=1), a fresh namespace name per test, and a
// loopback TCP proxy a test can cut and restore to stand in for a database
// that goes away and comes back.
package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

var (
	mu      sync.Mutex
	reached = map[string]error{}
)

// DSN returns the DSN in the environment variable env (def if unset),
// having checked once per process with reach that the server answers. When
// it does not, the test is skipped with the reason — or fails when
// LATCH_REQUIRE_INTEGRATION=1 (CI). what names the server in messages;
// reach's error may name host and user but must not quote the password.
func DSN(tb testing.TB, env, def, what string, reach func(ctx context.Context, dsn string) error) string {
	tb.Helper()
	dsn := os.Getenv(env)
	if dsn == "" {
		dsn = def
	}
	mu.Lock()
	err, ok := reached[dsn]
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = reach(ctx, dsn)
		cancel()
		reached[dsn] = err
	}
	mu.Unlock()
	if err != nil {
		msg := what + " unreachable (set " + env + "; default " + def + "): " + err.Error()
		if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return dsn
}

// Name returns prefix followed by 12 random hex digits: a schema or
// database name no other test run uses.
func Name(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Proxy is a loopback TCP proxy to a server that a test can cut (close the
// listener and every connection) and restore (listen again on the same
// address). Its methods are safe for concurrent use.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// NewProxy starts a proxy to target; it is cut when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

// Cut closes the listener and every proxied connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore listens again on the same address.
func (p *Proxy) Restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("sqltest: proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// ClosedPort returns a loopback address nothing listens on, for tests of a
// database that cannot be reached.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
