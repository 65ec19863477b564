package redisstore

import (
	"context"
	"sync/atomic"
	"time"
)

// deadlineGrain is the fraction of Options.Timeout by which a call's
// deadline may exceed it: calls that start within the same grain share one
// deadline context.
const deadlineGrain = 8

// deadlines hands out the contexts that bound calls by Options.Timeout.
// context.WithTimeout per call was a third of an uncached Get's own CPU
// (a timer, a channel and the context, five allocations, and the timer
// heap's lock on every call and cancel); here the calls that start within
// one grain (Timeout/deadlineGrain) share a context that ends Timeout plus
// one grain after the first of them started, so every call gets at least
// Timeout and at most Timeout plus an eighth, and costs one clock reading
// and an atomic load, no timer of its own.
type deadlines struct {
	timeout time.Duration
	grain   int64     // ns
	base    time.Time // origin (monotonic) of the ns below
	cur     atomic.Pointer[deadlineCtx]
}

// deadlineCtx is a shared deadline context and until when (ns since base)
// calls may start on it.
type deadlineCtx struct {
	context.Context
	handOut int64
	cancel  context.CancelFunc
}

func (d *deadlines) init(timeout time.Duration) {
	d.timeout = timeout
	d.grain = max(int64(timeout/deadlineGrain), 1)
	d.base = time.Now()
}

// get returns a context that ends at least the timeout from now, and at
// most the timeout plus one grain.
func (d *deadlines) get() context.Context {
	now := int64(time.Since(d.base))
	c := d.cur.Load()
	if c != nil && now < c.handOut {
		return c.Context
	}
	n := &deadlineCtx{handOut: now + d.grain}
	n.Context, n.cancel = context.WithDeadline(context.Background(), d.base.Add(time.Duration(now+d.grain)+d.timeout))
	if !d.cur.CompareAndSwap(c, n) {
		n.cancel() // another call made one meanwhile, which is as fresh
		if w := d.cur.Load(); w != nil {
			return w.Context
		}
	}
	return n.Context
}

// boundCtx is a caller's context bounded by a shared deadline: Deadline,
// Done and Err are the deadline's, Value is the caller's. The caller's own
// cancellation is checked when the call starts (see Store.call), not while
// it waits for Redis: waiting on both would need a channel (a timer or a
// goroutine) per call, which is what deadlines avoids. A call whose caller
// gives up meanwhile ends when Redis answers or the deadline passes.
type boundCtx struct {
	context.Context // the deadline
	parent          context.Context
}

func (c *boundCtx) Value(key any) any { return c.parent.Value(key) }

// bound returns ctx bounded by the store's timeout: ctx itself when it
// already ends within the timeout (plus the grain), or is done; the shared deadline context
// for a context that carries nothing (context.Background); otherwise a
// boundCtx, one 32-byte allocation.
func (s *Store) bound(ctx context.Context) context.Context {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.timeout+time.Duration(s.deadlines.grain) {
		return ctx
	}
	if ctx.Err() != nil {
		return ctx // rueidis refuses it before sending anything
	}
	d := s.deadlines.get()
	if ctx == context.Background() {
		return d
	}
	return &boundCtx{Context: d, parent: ctx}
}
