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

	WronglyAccepted int // requests accepted after an acknowledged revocation (beyond the tolerance)
	Lost            int // acknowledged writes the read-back did not find
	TwoSuccessors   int // refresh tokens that yielded two different successors
	WrongErrors     int // 5xx other than 503 store_unavailable, and refusals of live sessions

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
		"wrongly accepted %d (max lag %v), lost %d, two successors %d, wrong errors %d (stale refusals within the bound %d); recovery [%s]",
		r.Ops, r.Accepted, r.Unavailable, r.Refused, r.Dropped, r.Sessions, r.Revocations, r.Rotations,
		r.WronglyAccepted, r.MaxLag.Round(time.Millisecond), r.Lost, r.TwoSuccessors, r.WrongErrors, r.StaleRefusals, strings.Join(rec, " "))
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
		case op.Answered() && op.Status < 500 && !op.Accepted && op.Expect == Live && staleWithin(writes[op.Session], op, o.Tolerance):
			r.StaleRefusals++
		case op.Answered() && op.Status < 500 && !op.Accepted && op.Expect == Live:
			fail(&r.WrongErrors, "session %s: %s on replica %d refused a live session: %d %q", op.Session, op.Kind, op.Replica, op.Status, op.Code)
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
