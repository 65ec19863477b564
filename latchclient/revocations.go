package latchclient

import (
	"fmt"
	"sync"
	"time"
)

// revocations is what an offline access-token verifier needs from the event
// stream (docs/protocol.md section 4, last paragraph): the sessions revoked,
// renewed and subject-revoked within the access-token lifetime.
type revocations struct {
	ttl time.Duration

	mu       sync.Mutex
	revoked  map[string]time.Time // session ID -> when the event arrived (for pruning)
	renewed  map[string]time.Time // session ID -> renewal time (store clock)
	subjects map[string][]subjectRevocation
	// distrust: tokens issued before it may belong to a session whose
	// revocation was lost (a reset, a dropped or stale stream).
	distrust time.Time
	pruned   time.Time
}

type subjectRevocation struct {
	at     time.Time
	except string
}

func newRevocations(ttl time.Duration) *revocations {
	return &revocations{ttl: ttl, revoked: map[string]time.Time{}, renewed: map[string]time.Time{},
		subjects: map[string][]subjectRevocation{}, distrust: time.Now()}
}

func (r *revocations) apply(e Event) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Type {
	case "session.revoked", "session.refresh_reuse":
		r.revoked[e.SessionID] = now
	case "session.renewed":
		r.renewed[e.SessionID] = e.At
	case "subject.revoked":
		r.subjects[e.Subject] = append(r.subjects[e.Subject], subjectRevocation{at: e.At, except: e.Except})
	case "reset":
		r.distrust = now
	}
	if now.Sub(r.pruned) > r.ttl/10 {
		r.pruneLocked(now)
	}
}

// lost records that events may have been missed (the stream dropped or
// went stale).
func (r *revocations) lost() {
	r.mu.Lock()
	r.distrust = time.Now()
	r.mu.Unlock()
}

// pruneLocked forgets what no unexpired token can need: entries older than
// the access-token lifetime.
func (r *revocations) pruneLocked(now time.Time) {
	r.pruned = now
	old := now.Add(-r.ttl - time.Minute) // a minute of leeway for clock skew
	for k, t := range r.revoked {
		if t.Before(old) {
			delete(r.revoked, k)
		}
	}
	for k, t := range r.renewed {
		if t.Before(old) {
			delete(r.renewed, k)
		}
	}
	for k, rs := range r.subjects {
		kept := rs[:0]
		for _, s := range rs {
			if !s.at.Before(old) {
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			delete(r.subjects, k)
		} else {
			r.subjects[k] = kept
		}
	}
}

// AccessTokenRevoked tells an offline access-token verifier whether a token
// whose signature and claims it already checked must be refused before its
// exp: true if its session (claim sid) was revoked, or renewed or
// revoked with its subject (sub) at or after its iat. It needs
// Config.Cache (the event stream). It answers ErrUnavailable when the
// stream cannot vouch for the answer — it is not live, or events may have
// been lost since the token was issued — and the caller must then verify
// the token online (POST /v1/sessions/verify), which fails closed.
func (c *Client) AccessTokenRevoked(sid, subject string, iat time.Time) (bool, error) {
	if c.cache == nil {
		return false, fmt.Errorf("%w: AccessTokenRevoked needs Config.Cache (the event stream)", ErrUnavailable)
	}
	if !c.cache.live(time.Now()) {
		return false, fmt.Errorf("%w: the event stream is not live", ErrUnavailable)
	}
	r := c.revs
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.revoked[sid]; ok {
		return true, nil
	}
	if at, ok := r.renewed[sid]; ok && !at.Before(iat) {
		return true, nil
	}
	for _, s := range r.subjects[subject] {
		if s.except != sid && !s.at.Before(iat) {
			return true, nil
		}
	}
	if iat.Before(r.distrust) {
		return false, fmt.Errorf("%w: events may have been lost since the token was issued", ErrUnavailable)
	}
	return false, nil
}
