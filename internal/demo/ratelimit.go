package demo

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTrackedIPs bounds the limiter's memory. When it is reached, IPs whose
// bucket has refilled are forgotten; if none has, the oldest-refilling state
// is dropped wholesale rather than growing without bound.
const maxTrackedIPs = 10_000

// ipLimiter rate-limits failed sign-ins per client IP. A sign-in reserves a
// token before the password is checked (so concurrent guesses cannot all
// slip through) and gives it back when the password was right: successful
// sign-ins are never limited.
type ipLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	ips   map[string]*rate.Limiter
}

func newIPLimiter(every rate.Limit, burst int) *ipLimiter {
	return &ipLimiter{every: every, burst: burst, ips: make(map[string]*rate.Limiter)}
}

// reserve takes a token for ip at now. It returns ok=false when ip has used
// up its attempts, and otherwise a function that returns the token.
func (l *ipLimiter) reserve(ip string, now time.Time) (giveBack func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.ips[ip]
	if lim == nil {
		if len(l.ips) >= maxTrackedIPs {
			l.prune(now)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.ips[ip] = lim
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() || res.DelayFrom(now) > 0 {
		res.CancelAt(now)
		return nil, false
	}
	return func() { res.CancelAt(now) }, true
}

// prune forgets IPs whose bucket is full again (they carry no state worth
// keeping); if that frees nothing, it forgets everyone.
func (l *ipLimiter) prune(now time.Time) {
	for ip, lim := range l.ips {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.ips, ip)
		}
	}
	if len(l.ips) >= maxTrackedIPs {
		clear(l.ips)
	}
}
