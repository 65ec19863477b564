// Package eventbus is the in-process event log of the stores whose every
// user lives in one process (memstore, boltstore): a bounded, time-limited
// ring of events with a broadcast wake-up. It implements
// [store.EventLog]'s Publish and Subscribe for them.
//
// Event IDs are "<epoch>-<seq>": epoch is random per Log, so an ID from an
// earlier process is unknown to this one (a subscriber resuming with it is
// told to reset), and seq increases in commit order.
package eventbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/latch-sessions/latch/store"
)

// MaxEvents bounds the ring whatever the retention says, so a burst of
// revocations cannot grow memory without limit.
const MaxEvents = 100_000

// Log is an in-process event log. The zero value is not usable; call New.
// It is safe for concurrent use.
type Log struct {
	retention time.Duration
	epoch     string

	mu    sync.Mutex
	seq   uint64        // seq of the last appended event
	ring  []store.Event // retained events, oldest first; ring[i] has seq first+i
	first uint64
	wake  chan struct{} // closed (and replaced) by every append
}

// New returns a Log that keeps events for retention (at least; and at
// most MaxEvents of them).
func New(retention time.Duration) *Log {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("eventbus: crypto/rand failed: " + err.Error())
	}
	return &Log{retention: retention, epoch: hex.EncodeToString(b[:]), first: 1, wake: make(chan struct{})}
}

// Append commits evs in order, assigning their IDs, and wakes subscribers.
// Callers that append for a write hold the write's lock, so an event is in
// the log before the write can be observed.
func (l *Log) Append(evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		l.seq++
		e.ID = l.epoch + "-" + strconv.FormatUint(l.seq, 10)
		if e.At.IsZero() {
			e.At = time.Now()
		}
		e.At = e.At.UTC()
		l.ring = append(l.ring, e)
	}
	l.trim(evs[len(evs)-1].At)
	close(l.wake)
	l.wake = make(chan struct{})
}

// trim drops events older than the retention, and beyond MaxEvents.
func (l *Log) trim(now time.Time) {
	drop := 0
	for drop < len(l.ring) && (len(l.ring)-drop > MaxEvents || now.Sub(l.ring[drop].At) > l.retention) {
		drop++
	}
	if drop == 0 {
		return
	}
	l.ring = append(l.ring[:0:0], l.ring[drop:]...)
	l.first += uint64(drop)
}

// Publish appends e; see store.EventLog.
func (l *Log) Publish(ctx context.Context, e store.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	l.Append(e)
	return nil
}

// Subscribe delivers events committed at or after since, then new ones,
// until ctx ends; see store.EventLog. Memory never fails, so it returns
// only ctx's error.
func (l *Log) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	l.mu.Lock()
	next := l.first
	for i, e := range l.ring {
		if !e.At.Before(since) {
			break
		}
		next = l.first + uint64(i) + 1
	}
	l.mu.Unlock()
	// An in-process log cannot be cut off, but its proofs still age: a
	// heartbeat carries the age of the newest one, and clients count their
	// staleness bound from it. Proving often keeps that age near zero.
	tick := time.NewTicker(store.EventAliveInterval / 4)
	defer tick.Stop()
	for {
		l.mu.Lock()
		if next < l.first {
			l.mu.Unlock() // trimmed before delivery: the subscriber must reset
			return fmt.Errorf("%w: events were dropped before delivery", store.ErrUnavailable)
		}
		var evs []store.Event
		if i := next - l.first; i < uint64(len(l.ring)) {
			evs = append(evs, l.ring[i:]...)
		}
		next = l.seq + 1
		wake := l.wake
		l.mu.Unlock()
		if len(evs) > 0 {
			sink.Events(evs)
		}
		sink.Alive(time.Now())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-tick.C:
		}
	}
}
