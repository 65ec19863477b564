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
	remote := remoteHost(r.RemoteAddr)
	if s.ipHeader == "" || remote == "" {
		return remote
	}
	ra, err := netip.ParseAddr(remote)
	if err != nil || !s.trusted(ra) {
		return remote
	}
	// Walk the header's addresses from the right (the ones added by the
	// proxies nearest to us) past the trusted proxies.
	values := r.Header.Values(s.ipHeader)
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
			if !s.trusted(a) {
				return leftmost
			}
		}
	}
	if leftmost != "" {
		return leftmost
	}
	return remote
}

func (s *Sessions) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
