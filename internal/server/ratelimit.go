package server

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/latch-sessions/latch/latchhttp"
)

// Defaults of the per-client rate limit on the public endpoints: far above
// what a browser or app sends (a refresh per access-token lifetime, a
// whoami per page), even for a few hundred users behind one NAT address.
const (
	DefaultRateLimit = 100 // requests per second per client
	DefaultRateBurst = 300
)

// rateLimited is the set of routes a client may call only RateLimit times
// a second: the public endpoints that take a credential. (JWKS and the
// metadata document are cacheable and cost no store read.)
var rateLimited = map[string]bool{
	"POST /v1/refresh": true,
	"GET /v1/whoami":   true,
	"POST /v1/logout":  true,
}

// allow applies the rate limit of r's client, answering 429 rate_limited
// with Retry-After when it is spent. A call with the API key is a backend
// relaying many users' calls and is never limited.
func (s *Server) allow(w http.ResponseWriter, r *http.Request) bool {
	if s.limiter == nil || (r.Header.Get("Authorization") != "" && s.authorized(r)) {
		return true
	}
	ip, _ := netip.ParseAddr(s.clientIP(r)) // unknown: the zero Addr, one client of its own
	ok, wait := s.limiter.Allow(ip, s.now())
	if ok {
		return true
	}
	s.metrics.rateLimited.WithLabelValues(r.Pattern).Inc()
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeProblem(w, problemFor(errorf(http.StatusTooManyRequests, CodeRateLimited,
		fmt.Sprintf("too many requests from this address; retry in %d s (backends relaying users' calls send the API key)", secs))))
	return false
}

// clientIP is the address of r's client: the peer, or the address the
// trusted proxies in front of us recorded in X-Forwarded-For.
func (s *Server) clientIP(r *http.Request) string {
	if len(s.opts.TrustedProxies) == 0 {
		return latchhttp.ClientIP(r, "", nil)
	}
	return latchhttp.ClientIP(r, "X-Forwarded-For", s.opts.TrustedProxies)
}
