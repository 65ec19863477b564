package faults

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Report is what [Check] found. Violations name session IDs and kinds,
// never a token.
type Report struct {
	Ops         int           // operations checked (the read-back included)
	Accepted    int           // 2xx answers
	Unavailable int           // 503 store_unavailable answers
	Refused     int           // connections refused (nothing listening)
	Dropped     int           // requests sent but never answered (reset, timeout)
	Sessions    int           // distinct sessions whose create was acknowledged
	Revocations int           // acknowledged revocations (by ID or by subject)
	Rotations   int           // acknowledged refresh rotations
	MaxLag      time.Duration // longest time after an acknowledged revocation that a request starting then was accepted (0: none)
	// StaleRefusals are refusals of a live session's current credential
	// that started within the tolerance of the write (on another replica)
	// that issued it: a cache that has not yet applied the write. Not a
	// violation within the bound, but a wrong answer a client sees.
	StaleRefusals int
	// ClockRefusals are refusals of a live session's current credential
	// that a recorded clock step explains (see [Timeouts]): early expiry on
	// the replica whose clock is ahead, or an access token it issued
	// refused elsewhere as issued in the future. A safe failure, counted.
	ClockRefusals int
	// MaxExtension is how much later than the newest write's end plus the
	// idle timeout a session's read-back idle deadline lay: what a replica
	// whose clock ran ahead added to sessions it wrote (0 without steps).
	MaxExtension time.Duration

	WronglyAccepted int // requests accepted after an acknowledged revocation (beyond the tolerance)
	Lost            int // acknowledged writes the read-back did not find
	TwoSuccessors   int // refresh tokens that yielded two different successors
	WrongErrors     int // 5xx other than 503 store_unavailable, and refusals of live sessions
	LateDeadlines   int // read-back deadlines later than any writer's clock plus the timeout allows

	Recovery   []time.Duration // per fault: from the dependency's return to the first success on every replica; -1 if none
	Violations []string
}

// OK reports whether no violation was found.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// MaxRecovery is the longest recovery (or -1 if a fault never recovered).
func (r *Report) MaxRecovery() time.Duration {
	var m time.Duration
	for _, d := range r.Recovery {
		if d < 0 {
			return -1
		}
		m = max(m, d)
	}
	return m
}

func (r *Report) String() string {
	var rec []string
	for _, d := range r.Recovery {
		rec = append(rec, d.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("ops %d (accepted %d, 503 %d, refused %d, dropped %d), sessions %d, revocations %d, rotations %d; "+
		"wrongly accepted %d (max lag %v), lost %d, two successors %d, wrong errors %d (stale refusals within the bound %d, "+
		"refusals the clock explains %d), late deadlines %d (max extension %v); recovery [%s]",
		r.Ops, r.Accepted, r.Unavailable, r.Refused, r.Dropped, r.Sessions, r.Revocations, r.Rotations,
		r.WronglyAccepted, r.MaxLag.Round(time.Millisecond), r.Lost, r.TwoSuccessors, r.WrongErrors, r.StaleRefusals,
		r.ClockRefusals, r.LateDeadlines, r.MaxExtension.Round(time.Millisecond), strings.Join(rec, " "))
}

// Options tune [Check].
type Options struct {
	// Tolerance is how long after an acknowledged revocation a request may
	// still be accepted: 0 for a store without a cache; a store that
	// promises bounded staleness passes its bound (the Redis store's
	// client-side cache: 250 ms by default, see RELIABILITY.md). Lags
	// within it are still reported in Report.MaxLag.
	Tolerance time.Duration
	// MaxViolations caps the messages kept (default 20); counts are exact.
	MaxViolations int
	// Timeouts are the replicas' session and token lifetimes, which the
	// clock checks need (see [Timeouts]); zero skips them.
	Timeouts Timeouts
}

// Timeouts are the lifetimes latch serve ran with (--idle-timeout,
// --absolute-timeout, --access-ttl, and the access-token verifier's clock
// skew leeway). With them, and the clock steps recorded in the history,
// the checker judges what a replica whose clock is Offset ahead may do:
//
//   - refuse a live session as expired ("expired"; a renewal: 404) only if
//     its deadline, at most the newest write's end plus that writer's
//     offset plus the timeout, had passed by the refusing replica's clock
//     (the request's end plus its offset);
//   - refuse an access token as expired on the same terms (its exp is at
//     most the issuing answer's end plus the issuer's offset plus the
//     TTL), or, on a replica behind the issuer, as "invalid_token" only if
//     the token's iat could lie more than the leeway ahead of that
//     replica's clock;
//   - write deadlines at most its offset late: a session's idle deadline
//     read back after the faults is at most the newest write's end plus
//     that writer's offset plus the idle timeout (the absolute deadline:
//     the create's end plus its offset plus the absolute timeout);
//
// and nothing else: a revoked session is refused by every replica whatever
// its clock (revocation is a state, not a time), and no write is lost.
type Timeouts struct {
	Idle, Absolute, AccessTTL, Leeway time.Duration
}

// stepSlack widens a clock step's window at both ends: a replica reads the
// offset a few milliseconds after the test writes it, and a loaded
// machine can delay that much more.
const stepSlack = 250 * time.Millisecond

// timePrecision is the coarsest a stored or signed time is kept (a JWT's
// iat and exp are whole seconds).
const timePrecision = time.Second

// clock answers what a replica's clock could read during an operation.
type clock []ClockStep

// offsets returns the least and the most the replica's clock can have been
// ahead during [start, end].
func (c clock) offsets(replica int, start, end time.Time) (lo, hi time.Duration) {
	first := true
	for _, t := range []time.Time{start, end} {
		var l, h time.Duration
		for _, s := range c {
			if s.Replica != replica {
				continue
			}
			if !t.Before(s.From) && t.Before(s.To.Add(stepSlack)) {
				h = max(h, s.Offset)
			}
			if !t.Before(s.From.Add(stepSlack)) && t.Before(s.To) {
				l = max(l, s.Offset)
			}
		}
		if first {
			lo, hi, first = l, h, false
		}
		lo, hi = min(lo, l), max(hi, h)
	}
	return lo, hi
}

// latest bounds from above what a replica that answered op read as now.
func (c clock) latest(op *Op) time.Time {
	_, hi := c.offsets(op.Replica, op.Start, op.End)
	return op.End.Add(hi)
}

// earliest bounds it from below.
func (c clock) earliest(op *Op) time.Time {
	lo, _ := c.offsets(op.Replica, op.Start, op.End)
	return op.Start.Add(lo)
}

// bounds are what the operations before one tell of a session's deadlines
// and of its current access token. A deadline is the one the last write
// set (a create, refresh or renewal sets it by the writer's clock; a
// verify may push it later, never earlier), so it lies between the least
// the last certain write can have set and the most any write can have.
type bounds struct {
	idleMin, idleMax time.Time // the idle deadline
	absMin, absMax   time.Time // the absolute deadline (zero: no create seen)
	iatMin, iatMax   time.Time // the current access token's iat
	lastEnd          time.Time // the newest operation's end, by the true clock
}

// boundsBefore computes bounds from ops (one session's, sorted by start)
// that ended before op began. For the upper bounds every one of them counts
// as a possible write (a verify may have recorded activity; an unanswered
// one may have been applied); for the lower ones, the last acknowledged
// create, refresh or renewal, and any unanswered or failed refresh or
// renewal after it (it may have been applied by a clock behind).
func (c clock) boundsBefore(ops []*Op, op *Op, t Timeouts) bounds {
	var b bounds
	for _, p := range ops {
		if !p.End.Before(op.Start) || p.Kind == Revoke || p.Kind == RevokeAll {
			continue
		}
		hi, lo := c.latest(p), c.earliest(p)
		b.idleMax = maxTime(b.idleMax, hi.Add(t.Idle))
		b.lastEnd = maxTime(b.lastEnd, p.End)
		issues := p.Kind == Create || p.Kind == Refresh || p.Kind == Renew
		switch {
		case issues && p.Accepted:
			b.idleMin = lo.Add(t.Idle)
			b.iatMin, b.iatMax = lo, hi // each answers with a fresh access token
			if p.Kind == Create {
				b.absMin, b.absMax = lo.Add(t.Absolute), hi.Add(t.Absolute)
			}
		case issues && (!p.Answered() || p.Status >= 500) && !b.idleMin.IsZero():
			b.idleMin = minTime(b.idleMin, lo.Add(t.Idle))
		}
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// explains reports whether a clock step explains op's refusal of a live
// session's credential (see [Timeouts]).
func (c clock) explains(ops []*Op, op *Op, t Timeouts) bool {
	if len(c) == 0 || t.Idle <= 0 {
		return false
	}
	b := c.boundsBefore(ops, op, t)
	if b.idleMin.IsZero() {
		return false // no acknowledged create: nothing is known
	}
	// A refusal is explained if the refusing replica's clock can have
	// passed the deadline: the least it can be against the most the clock
	// can read. Stores and JWTs may keep times truncated (iat to the
	// second), hence the precision.
	now := c.latest(op).Add(timePrecision)
	expired := !b.idleMin.After(now) || (!b.absMin.IsZero() && !b.absMin.After(now))
	switch op.Kind {
	case VerifySession, Refresh:
		return op.Code == "expired" && expired
	case Renew:
		return op.Status == http.StatusNotFound && expired
	case VerifyAccess:
		switch op.Code {
		case "expired":
			return expired || !b.iatMin.Add(t.AccessTTL).After(now)
		case "invalid_token":
			// Its iat can lie beyond this replica's clock plus the leeway.
			return b.iatMax.After(c.earliest(op).Add(t.Leeway))
		}
	}
	return false
}

// Check proves the properties listed in the package documentation over
// the operations in h.
func Check(h *History, o Options) *Report {
	if o.MaxViolations <= 0 {
		o.MaxViolations = 20
	}
	ops := h.Ops()
	slices.SortFunc(ops, func(a, b Op) int { return a.Start.Compare(b.Start) })
	r := &Report{Ops: len(ops)}
	fail := func(counter *int, format string, args ...any) {
		*counter++
		if len(r.Violations) < o.MaxViolations {
			r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
		}
	}

	// What was acknowledged.
	revokedAt := map[string]time.Time{} // session -> end of its first acknowledged revocation
	writes := map[string][]*Op{}        // session -> its acknowledged creates, refreshes, renewals
	created := map[string]bool{}
	successors := map[string]string{} // refresh token -> the successor it yielded
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Accepted:
			r.Accepted++
		case op.Status == http.StatusServiceUnavailable && op.Code == "store_unavailable":
			r.Unavailable++
		case op.Refused:
			r.Refused++
		case !op.Answered():
			r.Dropped++
		}
		if !op.Accepted {
			continue
		}
		if op.Kind == Create || op.Kind == Refresh || op.Kind == Renew {
			writes[op.Session] = append(writes[op.Session], op)
		}
		switch op.Kind {
		case Create:
			created[op.Session] = true
		case Revoke, RevokeAll:
			if t, ok := revokedAt[op.Session]; !ok || op.End.Before(t) {
				revokedAt[op.Session] = op.End
			}
			r.Revocations++
		case Refresh:
			if !op.Final {
				r.Rotations++
			}
			if prev, ok := successors[op.Token]; ok && prev != op.Next {
				fail(&r.TwoSuccessors, "session %s: one refresh token yielded two different successors", op.Session)
			}
			successors[op.Token] = op.Next
		}
	}
	r.Sessions = len(created)
	steps := clock(h.ClockSteps())
	bySession := map[string][]*Op{}
	for i := range ops {
		bySession[ops[i].Session] = append(bySession[ops[i].Session], &ops[i])
	}

	for i := range ops {
		op := &ops[i]
		at, revoked := revokedAt[op.Session]
		grants := op.Kind == VerifySession || op.Kind == VerifyAccess || op.Kind == Refresh || op.Kind == Renew
		switch {
		case op.Accepted && grants && revoked && op.Start.After(at):
			lag := op.Start.Sub(at)
			r.MaxLag = max(r.MaxLag, lag)
			if lag > o.Tolerance || op.Final {
				fail(&r.WronglyAccepted, "session %s: %s on replica %d accepted %v after its revocation was acknowledged", op.Session, op.Kind, op.Replica, lag.Round(time.Microsecond))
			}
		case op.Accepted && op.Expect == Refused:
			// The revocation's acknowledgement is what Expect rests on, so
			// this is caught above; kept as a guard against a bookkeeping slip.
			fail(&r.WronglyAccepted, "session %s: %s accepted a session whose revocation was acknowledged", op.Session, op.Kind)
		case op.Status >= 500 && !(op.Status == http.StatusServiceUnavailable && op.Code == "store_unavailable"):
			fail(&r.WrongErrors, "session %s: %s on replica %d answered %d %q (only 503 store_unavailable may)", op.Session, op.Kind, op.Replica, op.Status, op.Code)
		case op.Final && op.Expect == Live && op.Answered() && !op.Accepted && op.Status != http.StatusServiceUnavailable:
			// (A 503 read-back is retried; the recovery time reports a
			// store that does not come back.)
			fail(&r.Lost, "session %s: read-back %s answered %d %q: an acknowledged write was lost", op.Session, op.Kind, op.Status, op.Code)
		case op.Answered() && op.Status < 500 && !op.Accepted && op.Expect == Live && steps.explains(bySession[op.Session], op, o.Timeouts):
			r.ClockRefusals++
		case op.Answered() && op.Status < 500 && !op.Accepted && op.Expect == Live && op.Code == "invalid_token" && staleWithin(writes[op.Session], op, o.Tolerance):
			// (A cache behind a rotation or renewal knows the new token
			// not: invalid_token. It cannot make a session expire.)
			r.StaleRefusals++
		case op.Answered() && op.Status < 500 && !op.Accepted && op.Expect == Live:
			fail(&r.WrongErrors, "session %s: %s on replica %d refused a live session: %d %q", op.Session, op.Kind, op.Replica, op.Status, op.Code)
		}
	}

	// Deadlines: no read-back shows one later than the writers' clocks
	// allow.
	if o.Timeouts.Idle > 0 {
		for i := range ops {
			op := &ops[i]
			// Only a read (GET) shows deadlines it did not set itself.
			if op.Kind != Reread || !op.Accepted || op.IdleExpires.IsZero() {
				continue
			}
			b := steps.boundsBefore(bySession[op.Session], op, o.Timeouts)
			if b.lastEnd.IsZero() {
				continue
			}
			r.MaxExtension = max(r.MaxExtension, op.IdleExpires.Sub(b.lastEnd.Add(o.Timeouts.Idle)))
			switch {
			case op.IdleExpires.After(b.idleMax):
				fail(&r.LateDeadlines, "session %s: idle deadline %v after the latest any writer's clock allows", op.Session, op.IdleExpires.Sub(b.idleMax))
			case !b.absMax.IsZero() && op.Expires.After(b.absMax):
				fail(&r.LateDeadlines, "session %s: absolute deadline %v after the latest the creator's clock allows", op.Session, op.Expires.Sub(b.absMax))
			}
		}
	}

	// Recovery: for each fault, the first success on each replica among
	// requests that started once the dependency was back.
	replicas := map[int]bool{}
	for i := range ops {
		replicas[ops[i].Replica] = true
	}
	for _, f := range h.Faults() {
		first := map[int]time.Duration{}
		for i := range ops {
			op := &ops[i]
			if _, seen := first[op.Replica]; seen || !op.Accepted || op.Start.Before(f.Back) {
				continue
			}
			first[op.Replica] = op.End.Sub(f.Back)
		}
		d := time.Duration(0)
		for rep := range replicas {
			got, ok := first[rep]
			if !ok {
				d = -1
				break
			}
			d = max(d, got)
		}
		r.Recovery = append(r.Recovery, d)
	}
	return r
}

// staleWithin reports whether op started within tol of the end of the
// latest acknowledged write in ws (sorted by start) that ended before it,
// and that write went to another replica.
func staleWithin(ws []*Op, op *Op, tol time.Duration) bool {
	if tol <= 0 || op.Final {
		return false
	}
	var last *Op
	for _, w := range ws {
		if w.End.Before(op.Start) && (last == nil || w.End.After(last.End)) {
			last = w
		}
	}
	return last != nil && last.Replica != op.Replica && op.Start.Sub(last.End) <= tol
}
