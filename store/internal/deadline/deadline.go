// Package deadline bounds store calls by a per-store timeout without a
// timer per call: calls that start within one grain (an eighth of the
// timeout) share one deadline context, which ends the timeout plus one
// grain after the first of them started. Every call gets at least the
// timeout and at most the timeout plus an eighth.
//
// context.WithTimeout per call was a third of an uncached Redis Get's own
// CPU: a timer, a channel and the context (five allocations), and the
// timer heap's lock on every call and cancel.
package deadline

import (
	"context"
	"sync/atomic"
	"time"
)

// Grain is the fraction of the timeout by which a call's deadline may
// exceed it.
const Grain = 8

// Deadlines hands out the contexts that bound calls by a timeout. Its
// methods are safe for concurrent use; the zero value is not usable: call
// Init first.
type Deadlines struct {
	timeout time.Duration
	grain   int64     // ns
	base    time.Time // origin (monotonic) of the ns below
	cur     atomic.Pointer[shared]
}

// shared is a shared deadline context and until when (ns since base)
// calls may start on it.
type shared struct {
	context.Context
	handOut int64
	cancel  context.CancelFunc
}

// Init sets the timeout (> 0).
func (d *Deadlines) Init(timeout time.Duration) {
	d.timeout = timeout
	d.grain = max(int64(timeout/Grain), 1)
	d.base = time.Now()
}

// Timeout is the timeout Init set.
func (d *Deadlines) Timeout() time.Duration { return d.timeout }

// get returns a context that ends at least the timeout from now, and at
// most the timeout plus one grain.
func (d *Deadlines) get() context.Context {
	now := int64(time.Since(d.base))
	c := d.cur.Load()
	if c != nil && now < c.handOut {
		return c.Context
	}
	n := &shared{handOut: now + d.grain}
	n.Context, n.cancel = context.WithDeadline(context.Background(), d.base.Add(time.Duration(now+d.grain)+d.timeout))
	if !d.cur.CompareAndSwap(c, n) {
		n.cancel() // another call made one meanwhile, which is as fresh
		if w := d.cur.Load(); w != nil {
			return w.Context
		}
	}
	return n.Context
}

// Bound returns ctx bounded by the timeout: ctx itself when it already
// ends within the timeout (plus the grain) or is done; the shared deadline
// context for context.Background; otherwise ctx's values under the shared
// deadline, one 32-byte allocation.
//
// The caller's own cancellation is then checked when the call starts (a
// done ctx is returned as is, and drivers refuse it before sending
// anything), not while the call waits: waiting on both would need a
// channel (a timer or a goroutine) per call, which is what Deadlines
// avoids. A call whose caller gives up meanwhile ends when the server
// answers or the deadline passes.
func (d *Deadlines) Bound(ctx context.Context) context.Context {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d.timeout+time.Duration(d.grain) {
		return ctx
	}
	if ctx.Err() != nil {
		return ctx
	}
	s := d.get()
	if ctx == context.Background() {
		return s
	}
	return &bound{Context: s, parent: ctx}
}

// bound is a caller's context under a shared deadline: Deadline, Done and
// Err are the deadline's, Value is the caller's.
type bound struct {
	context.Context // the shared deadline
	parent          context.Context
}

func (c *bound) Value(key any) any { return c.parent.Value(key) }

// AfterFunc registers f on the shared deadline, as context.AfterFunc does
// on a context of the context package: without it, context.AfterFunc (pgx
// calls it on every query) would start a goroutine to wait on a context of
// an unknown type.
func (c *bound) AfterFunc(f func()) func() bool { return context.AfterFunc(c.Context, f) }
