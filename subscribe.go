package latch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Event types of the session event stream (see [Manager.Subscribe]) besides
// the audit types above.
const (
	EventSubjectRevoked EventType = store.EventSubjectRevoked // every session of Subject but Except
	EventKeysChanged    EventType = store.EventKeysChanged    // KeyID rotated in or revoked
	// EventReuseRevoked is the stream's name for a refresh-token reuse: the
	// session is revoked as well (a session.revoked event follows).
	EventReuseRevoked EventType = store.EventRefreshReuse
	// EventReset tells a subscriber that events may have been lost: drop
	// every cache built on the stream.
	EventReset EventType = "reset"
)

// StreamTypes are the event types a subscription receives when it names
// none: the ones every cache of session state must act on.
var StreamTypes = []EventType{EventRevoked, EventRenewed, EventReuseRevoked, EventSubjectRevoked, EventKeysChanged, EventReset}

// auditStreamTypes are the audit events a subscription may name; they are
// this process's own (the store does not carry them), live only.
var auditStreamTypes = []EventType{EventCreated, EventRefreshed, EventExpired, EventCSRFRejected, EventValidationFailed}

// Reasons of a reset event.
const (
	ResetUnknownID = "unknown-id"        // Last-Event-ID is beyond the retention window or unknown
	ResetStoreLost = "store-unavailable" // the link to the store failed: events may be lost
	ResetOverflow  = "overflow"          // the subscriber fell too far behind
)

// Defaults of the event stream settings in Config.
const (
	DefaultEventRetention      = store.DefaultEventRetention
	DefaultEventRetentionCount = 10_000
	DefaultStalenessBound      = 250 * time.Millisecond
	// subscriberQueue bounds a subscriber's backlog; beyond it the backlog
	// is replaced by a reset, so one slow reader costs bounded memory.
	subscriberQueue = 50_000
	// resumeSkew is how far before a resumed ID a replay starts: on a
	// clustered store two replicas may interleave shards' events a little
	// differently, and a repeat is harmless where a gap is not.
	resumeSkew = time.Second
	// hubLinger keeps the store subscription open after its last subscriber
	// leaves, so a reconnecting client resumes without a store replay.
	hubLinger = 30 * time.Second
)

// StreamEvent is one event of the session event stream. It carries public
// identifiers only, never a token or secret.
type StreamEvent struct {
	// ID is opaque; pass the last one received as SubscribeOptions.LastEventID
	// to resume.
	ID        string
	Type      EventType
	SessionID string // session.*: the session
	Subject   string
	Except    string // subject.revoked: the session spared, if any
	Reason    string
	KeyID     string // keys.changed
	Time      time.Time
}

// SubscribeOptions select what a subscription receives.
type SubscribeOptions struct {
	// Types are the event types wanted (default StreamTypes). reset is
	// always delivered.
	Types []EventType
	// LastEventID, if set, resumes after that event: the subscription
	// starts with the events retained since then, or with a reset if the ID
	// is unknown or no longer retained.
	LastEventID string
}

// ErrUnknownEventType reports a SubscribeOptions.Types entry that is not an
// event type of the stream.
var ErrUnknownEventType = errors.New("latch: unknown event type")

// ErrNoEvents reports a store without an event log (store.EventLog); it
// matches errors.ErrUnsupported.
var ErrNoEvents = store.ErrNoEventLog

// Subscription is a subscriber's view of the event stream; see
// [Manager.Subscribe]. Its methods are safe for concurrent use.
type Subscription struct {
	h      *hub
	types  map[EventType]bool
	ready  chan struct{} // one token: the queue is not empty
	mu     sync.Mutex
	queue  []StreamEvent
	closed bool
}

// Ready is signalled when events are waiting; call Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the waiting events, oldest first, and empties the queue.
func (s *Subscription) Take() []StreamEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// Live reports whether the manager's own subscription to the store was
// proven working within the staleness bound (Config.StalenessBound). While
// it is not, a stream must not send heartbeats, so that a cache fed by it
// stops trusting itself too.
func (s *Subscription) Live() bool { _, live := s.h.proven(); return live }

// ProvenAge returns how long ago the manager's subscription to the store
// was last proven working, and whether that is within the staleness bound.
// Heartbeats carry the age, so a client can bound its own staleness end to
// end (docs/protocol.md section 3) instead of adding its bound to ours.
func (s *Subscription) ProvenAge() (age time.Duration, live bool) { return s.h.proven() }

// Close ends the subscription.
func (s *Subscription) Close() { s.h.remove(s) }

func (s *Subscription) push(evs []StreamEvent) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	n := len(s.queue)
	for _, e := range evs {
		if e.Type == EventReset || s.types[e.Type] {
			s.queue = append(s.queue, e)
		}
	}
	if len(s.queue) > subscriberQueue {
		s.queue = []StreamEvent{s.h.reset(ResetOverflow)}
	}
	grew := len(s.queue) > n
	s.mu.Unlock()
	if grew {
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// EventStats are counters of the manager's event stream, for metrics.
type EventStats struct {
	Subscribers int    // open subscriptions
	Received    uint64 // events received from the store (and this process's audit events)
	Lag         time.Duration
	// Lag is how long after its commit (store clock) the latest event was
	// received.
}

// EventStats returns the event stream's counters.
func (m *Manager) EventStats() EventStats {
	h := m.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	return EventStats{Subscribers: len(h.subs), Received: h.received, Lag: time.Duration(h.lag.Load())}
}

// Subscribe opens a subscription to the session event stream: every
// revocation, renewal, refresh-token reuse, revoke-all and signing-key change
// committed to the store by any process sharing it, in commit order (on a
// clustered store, per shard), plus the audit event types named in
// opts.Types that this process observes. Events carry no token or secret.
//
// The manager keeps one subscription to the store for all its subscribers
// and a window of recent events (Config.EventRetention and
// EventRetentionCount) for resuming with opts.LastEventID. A subscriber
// that may have missed events (an unknown or expired ID, a failure of the
// store link, a backlog too long) receives a reset. Call Close when done.
//
// It fails with ErrNoEvents if the store keeps no event log and with
// ErrUnknownEventType for a bad opts.Types.
func (m *Manager) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if m.cfg.Events == nil {
		return nil, ErrNoEvents
	}
	types := map[EventType]bool{}
	want := opts.Types
	if len(want) == 0 {
		want = StreamTypes
	}
	for _, t := range want {
		if !isStreamType(t) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, t)
		}
		types[t] = true
	}
	return m.hub.add(ctx, types, opts.LastEventID)
}

func isStreamType(t EventType) bool {
	return slices.Contains(StreamTypes, t) || slices.Contains(auditStreamTypes, t)
}

// PublishKeysChanged appends a keys.changed event (reason "rotated" or
// "revoked") for kid to the store's event log, so every replica and client
// refetches the JWKS, and on "revoked" refuses kid's tokens at once. A store
// without an event log makes it a no-op.
func (m *Manager) PublishKeysChanged(ctx context.Context, kid, reason string) error {
	if m.cfg.Events == nil {
		return nil
	}
	err := m.cfg.Events.Publish(ctx, store.Event{Type: store.EventKeysChanged, KeyID: kid, Reason: reason, At: m.cfg.Now().UTC()})
	return storeErr(err)
}

// hub is the manager's single subscription to the store, fanned out to
// its subscribers. It runs while it has subscribers (and hubLinger after).
type hub struct {
	m     *Manager
	epoch string // for IDs of this process's own events

	mu       sync.Mutex
	subs     map[*Subscription]struct{}
	ring     []StreamEvent // retained events, oldest first
	index    map[string]int
	base     int // position of ring[0]; positions never repeat
	local    uint64
	received uint64
	running  bool
	gen      uint64        // of the running store subscription
	started  chan struct{} // closed at the first proof of a live store link
	stop     context.CancelFunc
	linger   *time.Timer

	alive  atomic.Int64 // time.Now().UnixNano() of the last proof; 0: down
	lag    atomic.Int64
	lastAt time.Time // store time of the newest store event (run goroutine only)
}

func newHub(m *Manager) *hub {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail; a zero epoch would still be unique enough per process
	return &hub{m: m, epoch: hex.EncodeToString(b[:]), subs: map[*Subscription]struct{}{}, index: map[string]int{}}
}

// proven returns the age of the last proof that the store link works, and
// whether it is within the staleness bound. It uses the real clock, not
// Config.Now: staleness is about this machine's time.
func (h *hub) proven() (time.Duration, bool) {
	a := h.alive.Load()
	if a == 0 {
		return 0, false
	}
	age := max(time.Since(time.Unix(0, a)), 0)
	return age, age <= h.m.cfg.StalenessBound
}

func (h *hub) add(ctx context.Context, types map[EventType]bool, after string) (*Subscription, error) {
	s := &Subscription{h: h, types: types, ready: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	if !h.running {
		h.running = true
		h.started = make(chan struct{})
		rctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		h.gen++
		go h.run(rctx, h.started, h.gen)
	}
	started := h.started
	h.mu.Unlock()
	// Wait (briefly) for the store replay, so a resume finds its ID.
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-started:
	case <-t.C:
	case <-ctx.Done():
		h.maybeStop()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	if after == "" {
		return s, nil
	}
	p, ok := h.index[after]
	if !ok {
		s.push([]StreamEvent{h.reset(ResetUnknownID)})
		return s, nil
	}
	i := p - h.base
	from := i + 1
	for from > 0 && !h.ring[from-1].Time.Before(h.ring[i].Time.Add(-resumeSkew)) {
		from--
	}
	replay := append([]StreamEvent(nil), h.ring[from:i]...)
	replay = append(replay, h.ring[i+1:]...)
	s.push(replay)
	return s, nil
}

func (h *hub) remove(s *Subscription) {
	s.mu.Lock()
	s.closed, s.queue = true, nil
	s.mu.Unlock()
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	h.maybeStop()
}

// maybeStop stops the store subscription hubLinger after the last
// subscriber left.
func (h *hub) maybeStop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) > 0 || !h.running || h.linger != nil {
		return
	}
	h.linger = time.AfterFunc(hubLinger, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.subs) > 0 || h.linger == nil {
			return
		}
		h.linger = nil
		h.running = false
		h.stop()
		h.alive.Store(0)
		h.ring, h.index = nil, map[string]int{}
	})
}

// reset returns a new reset event; h.mu is held.
func (h *hub) reset(reason string) StreamEvent {
	h.local++
	return StreamEvent{ID: "r-" + h.epoch + "-" + strconv.FormatUint(h.local, 10), Type: EventReset, Reason: reason, Time: h.m.cfg.Now().UTC()}
}

// run keeps the store subscription open until ctx ends, resubscribing
// after a failure with a reset to every subscriber.
func (h *hub) run(ctx context.Context, started chan struct{}, gen uint64) {
	sink := &hubSink{h: h, started: started, gen: gen}
	since := h.m.cfg.Now().Add(-h.m.cfg.EventRetention)
	backoff := 50 * time.Millisecond
	for {
		_ = h.m.cfg.Events.Subscribe(ctx, since, sink) // the reset below tells subscribers
		if ctx.Err() != nil {
			return
		}
		h.alive.Store(0)
		h.mu.Lock()
		r := h.reset(ResetStoreLost)
		h.appendLocked([]StreamEvent{r})
		h.mu.Unlock()
		if !h.lastAt.IsZero() {
			since = h.lastAt.Add(-resumeSkew)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		if _, live := h.proven(); live {
			backoff = 50 * time.Millisecond
		}
	}
}

// appendLocked adds evs to the ring (skipping known IDs), fans them out and
// trims the ring; h.mu is held.
func (h *hub) appendLocked(evs []StreamEvent) {
	fresh := evs[:0:0]
	for _, e := range evs {
		if _, dup := h.index[e.ID]; dup {
			continue
		}
		h.index[e.ID] = h.base + len(h.ring)
		h.ring = append(h.ring, e)
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return
	}
	for s := range h.subs {
		s.push(fresh)
	}
	h.trim()
}

// trim drops events that are both older than the retention and beyond the
// retained count, or beyond the hard cap.
func (h *hub) trim() {
	keep, age := h.m.cfg.EventRetentionCount, h.m.cfg.EventRetention
	hard := max(keep, eventbusCap)
	now := h.m.cfg.Now()
	drop := 0
	for drop < len(h.ring) {
		n := len(h.ring) - drop
		if n > hard || (n > keep && now.Sub(h.ring[drop].Time) > age) {
			delete(h.index, h.ring[drop].ID)
			drop++
			continue
		}
		break
	}
	if drop > 0 {
		h.ring = append(h.ring[:0:0], h.ring[drop:]...)
		h.base += drop
	}
}

// eventbusCap bounds the ring whatever the retention says.
const eventbusCap = 100_000

// observeLocal forwards an audit event of this process to subscribers that
// asked for its type.
func (h *hub) observeLocal(e Event) {
	if !slices.Contains(auditStreamTypes, e.Type) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running || len(h.subs) == 0 {
		return
	}
	h.local++
	h.received++
	h.appendLocked([]StreamEvent{{
		ID: "l-" + h.epoch + "-" + strconv.FormatUint(h.local, 10), Type: e.Type,
		SessionID: e.SessionID, Subject: e.Subject, Reason: e.Reason, Time: e.Time,
	}})
}

// hubSink receives the store subscription's calls.
type hubSink struct {
	h       *hub
	gen     uint64
	started chan struct{}
	once    sync.Once
}

func (k *hubSink) Events(evs []store.Event) {
	h := k.h
	out := make([]StreamEvent, len(evs))
	for i, e := range evs {
		out[i] = StreamEvent{ID: e.ID, Type: EventType(e.Type), Subject: e.Subject, Reason: e.Reason, KeyID: e.KeyID, Time: e.At.UTC()}
		if !e.SessionID.IsZero() {
			out[i].SessionID = e.SessionID.String()
		}
		if !e.Except.IsZero() {
			out[i].Except = e.Except.String()
		}
	}
	last := evs[len(evs)-1].At
	if last.After(h.lastAt) {
		h.lastAt = last
	}
	h.lag.Store(int64(max(0, time.Since(last))))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != k.gen || !h.running {
		return // a stopped subscription's last words
	}
	h.received += uint64(len(evs))
	h.appendLocked(out)
}

func (k *hubSink) Alive(at time.Time) {
	k.h.alive.Store(at.UnixNano())
	k.once.Do(func() { close(k.started) })
}
