package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// proxy is a loopback TCP proxy to the test server that a test can cut and
// restore, standing in for a database that goes away and comes back.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
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

// cut closes the listener and every proxied connection.
func (p *proxy) cut() {
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

// restore listens again on the same address.
func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestOutageFailsClosedThenRecovers: while the database is unreachable every
// read fails with ErrUnavailable (never a record); once it is back the same
// Store works again without being reopened.
func TestOutageFailsClosedThenRecovers(t *testing.T) {
	dsn := testDSN(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skip("LATCH_TEST_POSTGRES is not a URL with a host; the proxy test needs one")
	}
	p := newProxy(t, u.Host)
	pu := *u
	pu.Host = p.addr
	s := openTestStore(t, Options{}) // migrates a fresh schema
	ps, err := Open(ctxT(t), pu.String(), Options{Schema: s.q.schema, OpTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()

	r := newRecord(t, "alice", 0)
	if _, err := ps.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Get(ctxT(t), r.ID); err != nil {
		t.Fatal(err)
	}

	p.cut()
	for i := 0; i < 3; i++ {
		got, err := ps.Get(ctxT(t), r.ID)
		if !errors.Is(err, store.ErrUnavailable) || got != nil {
			t.Fatalf("Get during an outage: %v, %v; want ErrUnavailable and no record", got, err)
		}
	}
	if err := ps.Ping(ctxT(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping during an outage: %v", err)
	}

	p.restore()
	// The pool reconnects on demand; allow a few attempts for connections
	// that died with the outage to be discarded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		got, err := ps.Get(ctx, r.ID)
		if err == nil {
			if got.ID != r.ID {
				t.Fatal("Get after recovery returned another record")
			}
			return
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get after recovery: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("store did not recover after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
