// Package faults is latch's fault-injection checker: load that records every
// operation it sends to real `latch serve` replicas (request, answer, start
// and end time), and a checker that proves afterwards, against what the
// servers acknowledged, that
//
//   - no request accepted a session after a revocation of it had been
//     acknowledged (by any replica) before the request began;
//   - no acknowledged create, revocation, renewal or refresh rotation was
//     lost: each is read back once the faults are over;
//   - no refresh token yielded two different successors;
//   - every error is 503 store_unavailable (or a refused connection while
//     the process is down), never another 5xx and never a wrong answer (a
//     refusal of a session known to be live);
//
// and measures the recovery time after each fault: from the moment the
// dependency is back to the first success on every replica.
//
// The tests in this package inject the faults (internal/testredis,
// internal/serveproc); a planted violation (a store wrapper that serves
// stale records or drops writes) proves the checker catches what it claims
// to. Tokens live only in memory: nothing here prints or logs one.
package faults

import (
	"sync"
	"time"
)

// Kind is one kind of operation.
type Kind string

const (
	Create        Kind = "create"         // POST /v1/sessions
	VerifySession Kind = "verify-session" // POST /v1/sessions/verify {session_token}
	VerifyAccess  Kind = "verify-access"  // POST /v1/sessions/verify {access_token}
	Refresh       Kind = "refresh"        // POST /v1/refresh
	Renew         Kind = "renew"          // POST /v1/sessions/{id}/renew
	Revoke        Kind = "revoke"         // DELETE /v1/sessions/{id}
	RevokeAll     Kind = "revoke-all"     // DELETE /v1/subjects/{subject}/sessions
	Reread        Kind = "reread"         // GET /v1/sessions/{id} after the faults
)

// Expect is what the issuing worker knew the answer must be when it sent
// the request: the checker judges answers against it.
type Expect int

const (
	Unknown Expect = iota // an earlier write's outcome is not known: any answer may be right
	Live                  // the session is live and the credential current: only 200 (or 503) is right
	Refused               // the session's revocation was acknowledged: a 200 is a violation
)

// Op is one recorded operation. Token fields hold secrets and are never
// printed (Op has no String method and the checker's messages name only
// session IDs and kinds).
type Op struct {
	Kind     Kind
	Replica  int // index of the replica it was sent to
	Session  string
	Subject  string
	Expect   Expect
	Start    time.Time
	End      time.Time
	Status   int    // HTTP status; 0 if no answer
	Code     string // problem code of an error answer
	Err      string // transport error, if no answer
	Refused  bool   // the connection was refused (nothing listening): no request was sent
	Token    string // the credential presented (refresh token for Refresh)
	Next     string // the successor refresh token a 200 refresh or renew returned
	Accepted bool   // the server accepted the session (2xx)
	Final    bool   // a read-back after the faults (Load.Reread)

	// The session's deadlines as a 2xx answer that carries the session
	// showed them (zero otherwise).
	IdleExpires, Expires time.Time
}

// Answered reports whether the server answered at all.
func (o *Op) Answered() bool { return o.Status != 0 }

// History collects operations from many goroutines. The zero value is
// ready to use.
type History struct {
	mu     sync.Mutex
	ops    []Op
	faults []Fault
	steps  []ClockStep
}

// Fault is one injected fault: from Start the dependency is broken, from
// Back it is available again.
type Fault struct {
	Name        string
	Start, Back time.Time
}

// ClockStep is a step of one replica's clock: from From until To, every
// time that replica reads is Offset ahead of the others'.
type ClockStep struct {
	Replica  int
	Offset   time.Duration
	From, To time.Time
}

// StepClock records a clock step (and, as a fault, its end as the moment
// the clock was right again).
func (h *History) StepClock(s ClockStep) {
	h.mu.Lock()
	h.steps = append(h.steps, s)
	h.faults = append(h.faults, Fault{Name: "clock step " + s.Offset.String(), Start: s.From, Back: s.To})
	h.mu.Unlock()
}

// ClockSteps returns a copy of the recorded clock steps.
func (h *History) ClockSteps() []ClockStep {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ClockStep(nil), h.steps...)
}

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Inject records a fault: name, when it began and when the dependency
// returned.
func (h *History) Inject(name string, start, back time.Time) {
	h.mu.Lock()
	h.faults = append(h.faults, Fault{Name: name, Start: start, Back: back})
	h.mu.Unlock()
}

// Ops returns a copy of the recorded operations.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Faults returns a copy of the recorded faults.
func (h *History) Faults() []Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Fault(nil), h.faults...)
}
