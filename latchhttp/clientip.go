package latchhttp

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/latch-sessions/latch"
)

// client returns the request's client metadata: the IP (see
// Config.ClientIPHeader) and the User-Agent.
func (s *Sessions) client(r *http.Request) latch.Client {
	c := latch.Client{IP: s.clientIP(r)}
	if ua := r.Header["User-Agent"]; len(ua) > 0 { // the key is canonical: skip Header.Get's canonicalisation
		c.UserAgent = ua[0]
	}
	return c
}

// remoteHost returns the host part of r.RemoteAddr without allocating. It is
// not validated here: the Manager records only valid IP addresses.
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (s *Sessions) clientIP(r *http.Request) string {
	return ClientIP(r, s.ipHeader, s.proxies)
}

// ClientIP returns the address of r's client. It is the peer's address
// (r.RemoteAddr), unless header is set and the peer is one of the trusted
// proxies: then it is the rightmost address in header (e.g.
// X-Forwarded-For) that is not a trusted proxy, walking from the proxies
// nearest to us. Addresses a client wrote into the header itself sit to
// the left of the ones trusted proxies appended, so it cannot choose its
// own address. A malformed header yields the peer's address. Most users
// won't need this: Sessions applies it with Config.ClientIPHeader and
// Config.TrustedProxies.
func ClientIP(r *http.Request, header string, trusted []netip.Prefix) string {
	remote := remoteHost(r.RemoteAddr)
	if header == "" || remote == "" {
		return remote
	}
	ra, err := netip.ParseAddr(remote)
	if err != nil || !isTrusted(trusted, ra) {
		return remote
	}
	// Walk the header's addresses from the right (the ones added by the
	// proxies nearest to us) past the trusted proxies.
	values := r.Header.Values(header)
	leftmost := ""
	for i := len(values) - 1; i >= 0; i-- {
		list := values[i]
		for list != "" {
			var item string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				item, list = list[j+1:], list[:j]
			} else {
				item, list = list, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(item))
			if err != nil {
				return remote // malformed: do not guess
			}
			a = a.Unmap()
			leftmost = a.String()
			if !isTrusted(trusted, a) {
				return leftmost
			}
		}
	}
	if leftmost != "" {
		return leftmost
	}
	return remote
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
