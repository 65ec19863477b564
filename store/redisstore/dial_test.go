package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/internal/testutil"
)

// tlsFront terminates TLS with a fresh self-signed certificate for
// 127.0.0.1 and forwards to target; it returns its address and the
// certificate's pool.
func tlsFront(t *testing.T, target string) (string, *x509.CertPool) {
	t.Helper()
	cert, pool := testutil.SelfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), pool
}

// TestDialTLS: with Options.Dial, the rediss schemes still speak TLS and
// verify the server against the dialed host, as without it.
func TestDialTLS(t *testing.T) {
	addr, pool := tlsFront(t, testredis.Addr(t))
	var dialed atomic.Int32
	dial := func(ctx context.Context, a string) (net.Conn, error) {
		dialed.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a)
	}
	s := openURL(t, "rediss://"+addr, func(o *Options) {
		o.Dial = dial
		o.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping over TLS through Dial: %v", err)
	}
	if dialed.Load() == 0 {
		t.Fatal("Options.Dial was not used")
	}
	// A certificate for another name is refused: the dialed host is verified.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := Open(ctx, "rediss://"+addr, func(o *Options) {
		o.Dial = dial
		o.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "other.example", MinVersion: tls.VersionTLS12}
	}); err == nil {
		t.Fatal("Open accepted a certificate that is not for the server name")
	}
	// And one that nobody vouches for.
	if _, err := Open(ctx, "rediss://"+addr, func(o *Options) { o.Dial = dial }); err == nil {
		t.Fatal("Open accepted a self-signed certificate outside the system roots")
	}
}
