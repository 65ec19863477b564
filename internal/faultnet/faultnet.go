// Package faultnet injects network faults between a test's clients and its
// servers: a TCP proxy that stalls (it stops forwarding in both directions
// but keeps every connection open, as a hung proxy or a half-dead load
// balancer does, so kernel keepalives still succeed), and a real cut — a
// network namespace joined to the host by a veth pair whose queues are set
// to drop every packet (`tc qdisc … pfifo limit 0` on both ends), so no
// kernel on either side sees a reset or an unreachable host.
//
// The cut needs root and the ip and tc commands; [Cut] skips the test with
// the reason where they are missing, or fails it when
// LATCH_REQUIRE_INTEGRATION=1. It uses only addresses inside a private /30
// of its own and deletes the namespace when the test ends.
package faultnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Proxy forwards TCP connections from a loopback port to one target until
// Stall, and again after Resume. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	running chan struct{} // closed while forwarding
	conns   map[net.Conn]bool
	closed  bool
}

// NewProxy starts a proxy to target on a free loopback port; it is closed
// (listener and every connection) when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultnet: listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, running: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.running)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stall stops forwarding: bytes already written to the proxy stay with it,
// connections stay open, new ones are accepted but get nothing through.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.running:
		p.running = make(chan struct{})
	default:
	}
}

// Resume forwards again, everything held back first, in order.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.running:
	default:
		close(p.running)
	}
}

// gate waits while the proxy is stalled.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.running
	p.mu.Unlock()
	<-ch
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		go func() {
			p.gate() // a stalled proxy does not even connect onwards
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			if !p.track(up) {
				c.Close()
				return
			}
			go p.pipe(up, c)
			p.pipe(c, up)
		}()
	}
}

// pipe copies from src to dst, waiting at each chunk while stalled.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		p.gate()
		n, err := src.Read(buf)
		if n > 0 {
			p.gate() // a chunk read just before Stall is held back too
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a closed connection: close both
			return
		}
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.Resume() // release the copiers so they see their connections closed
	p.ln.Close()
	for c := range conns {
		c.Close()
	}
}

// Proxies routes connections to a set of servers (a Cluster's nodes) each
// through its own Proxy, so that one call stalls them all.
type Proxies struct {
	byTarget map[string]*Proxy
}

// NewProxies starts one Proxy per target.
func NewProxies(t testing.TB, targets ...string) *Proxies {
	t.Helper()
	ps := &Proxies{byTarget: map[string]*Proxy{}}
	for _, a := range targets {
		ps.byTarget[a] = NewProxy(t, a)
	}
	return ps
}

// Dial connects to addr through its proxy; an address without one is
// refused, so nothing bypasses the fault.
func (ps *Proxies) Dial(ctx context.Context, addr string) (net.Conn, error) {
	p, ok := ps.byTarget[addr]
	if !ok {
		return nil, fmt.Errorf("faultnet: no proxy for %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.Addr())
}

// Stall stalls every proxy.
func (ps *Proxies) Stall() {
	for _, p := range ps.byTarget {
		p.Stall()
	}
}

// Resume resumes every proxy.
func (ps *Proxies) Resume() {
	for _, p := range ps.byTarget {
		p.Resume()
	}
}

// Net is a network namespace joined to the host by a veth pair: HostIP is
// the host end's address, on which servers the test starts may listen;
// Dial connects from inside the namespace. Cut drops every packet on both
// ends, Heal restores them.
type Net struct {
	t                testing.TB
	name             string
	hostIf, nsIf     string
	HostIP, InsideIP string
}

// unavailable skips t, or fails it under LATCH_REQUIRE_INTEGRATION=1.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("%s (LATCH_REQUIRE_INTEGRATION=1, so this is a failure)", msg)
	}
	t.Skip(msg)
}

// NewNet creates the namespace and the veth pair with an unused /30 of
// 10.213.0.0/16 and removes them when t ends.
func NewNet(t testing.TB) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "faultnet: a network cut needs root (network namespaces, veth, tc)")
	}
	for _, bin := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, fmt.Sprintf("faultnet: %s not installed (Debian: apt-get install iproute2): %v", bin, err))
		}
	}
	used, err := exec.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("faultnet: ip addr: %v: %s", err, used)
	}
	for range 100 {
		n := rand.IntN(1 << 14) // a /30 of 10.213.0.0/16
		host := fmt.Sprintf("10.213.%d.%d", n>>6, n&63<<2|1)
		inside := fmt.Sprintf("10.213.%d.%d", n>>6, n&63<<2|2)
		if strings.Contains(string(used), " "+host+"/") || strings.Contains(string(used), " "+inside+"/") {
			continue
		}
		id := fmt.Sprintf("%d%04x", os.Getpid()%100000, n)
		nt := &Net{t: t, name: "latchcut" + id, hostIf: "lch" + id, nsIf: "lcn" + id, HostIP: host, InsideIP: inside}
		if len(nt.hostIf) > 15 {
			nt.hostIf, nt.nsIf = nt.hostIf[:15], nt.nsIf[:15]
		}
		if err := nt.create(); err != nil {
			nt.destroy()
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			if strings.Contains(err.Error(), "Operation not permitted") {
				unavailable(t, fmt.Sprintf("faultnet: network namespaces not permitted here (a container without CAP_NET_ADMIN?): %v", err))
			}
			t.Fatalf("faultnet: %v", err)
		}
		t.Cleanup(nt.destroy)
		return nt
	}
	t.Fatalf("faultnet: no free /30 in 10.213.0.0/16")
	return nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *Net) create() error {
	for _, cmd := range [][]string{
		{"ip", "netns", "add", n.name},
		{"ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf, "netns", n.name},
		{"ip", "addr", "add", n.HostIP + "/30", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
		{"ip", "-n", n.name, "addr", "add", n.InsideIP + "/30", "dev", n.nsIf},
		{"ip", "-n", n.name, "link", "set", n.nsIf, "up"},
		{"ip", "-n", n.name, "link", "set", "lo", "up"},
	} {
		if err := run(cmd...); err != nil {
			return err
		}
	}
	return nil
}

// destroy deletes the namespace, which deletes the veth pair with it.
func (n *Net) destroy() {
	exec.Command("ip", "netns", "del", n.name).Run()
	exec.Command("ip", "link", "del", n.hostIf).Run()
}

// Cut drops every packet leaving either end of the pair: a silent cut,
// with no reset and no ICMP error on either side.
func (n *Net) Cut() {
	n.t.Helper()
	for _, cmd := range [][]string{
		{"tc", "qdisc", "add", "dev", n.hostIf, "root", "pfifo", "limit", "0"},
		{"tc", "-n", n.name, "qdisc", "add", "dev", n.nsIf, "root", "pfifo", "limit", "0"},
	} {
		if err := run(cmd...); err != nil {
			n.t.Fatalf("faultnet: %v", err)
		}
	}
}

// Heal undoes Cut.
func (n *Net) Heal() {
	n.t.Helper()
	for _, cmd := range [][]string{
		{"tc", "qdisc", "del", "dev", n.hostIf, "root"},
		{"tc", "-n", n.name, "qdisc", "del", "dev", n.nsIf, "root"},
	} {
		if err := run(cmd...); err != nil {
			n.t.Fatalf("faultnet: %v", err)
		}
	}
}

// Dial connects to addr from inside the namespace: the socket is made by
// a thread that has joined the namespace, and stays in it.
func (n *Net) Dial(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// A thread whose namespace could not be restored must not run
		// anything else: it stays locked and exits with this goroutine.
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer host.Close()
		ns, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("faultnet: setns: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if unix.Setns(int(host.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
