package store

import (
	"context"
	"errors"
	"time"
)

// Event types a store appends to its event log. They are the names of the
// event stream (GET /v1/events, docs/protocol.md section 3).
const (
	EventSessionRevoked = "session.revoked"       // SessionID, Subject, Reason
	EventSessionRenewed = "session.renewed"       // SessionID, Subject
	EventRefreshReuse   = "session.refresh_reuse" // SessionID, Subject
	EventSubjectRevoked = "subject.revoked"       // Subject, Except, Reason
	EventKeysChanged    = "keys.changed"          // KeyID, Reason
)

// Event is one entry of a store's event log: a fact about a session that
// every replica sharing the store must learn, such as a revocation. It
// carries only public identifiers (session IDs, the subject, a key ID),
// never a token, hash or secret.
type Event struct {
	// ID is assigned by the store when the event commits: opaque, unique,
	// and increasing in commit order (on a clustered store, within a shard).
	ID        string
	Type      string
	SessionID ID     // zero for subject.revoked and keys.changed
	Subject   string // empty for keys.changed
	Except    ID     // subject.revoked: the session it spared, or zero
	Reason    string
	KeyID     string // keys.changed
	At        time.Time
}

// EventLog is implemented by stores that keep a log of session events shared
// by every process on the store, so that a revocation through one replica
// reaches the caches of all of them.
//
// A store that implements EventLog appends, in the same atomic step as the
// write that causes them (so an event is never missing when the write
// succeeded, and never present when it failed):
//
//   - Revoke of a live record: session.revoked with the record's subject
//     and the reason; with reason refresh-reuse also session.refresh_reuse.
//   - RevokeSubject: one subject.revoked with the except ID and the reason,
//     whether or not a session was live.
//   - Create that evicts: session.revoked with reason evicted per evicted ID.
//   - Update that changes VerifierHash (a renewal: every token changed):
//     session.renewed.
//
// Events no store write carries (keys.changed) are appended with Publish.
type EventLog interface {
	// Publish appends e as a commit of its own; the store assigns e.ID.
	Publish(ctx context.Context, e Event) error

	// Subscribe delivers to sink every event committed at or after since
	// (as far back as the store's retention reaches; possibly a little
	// earlier, so a subscriber must handle an event twice), then every new
	// event as it commits, in commit order, until ctx ends (it then returns
	// ctx's error) or the link to the backend fails (it returns an error
	// matching ErrUnavailable; events may have been lost, and the caller
	// resubscribes). While the link works it calls sink.Alive at least every
	// EventAliveInterval. Calls to sink are sequential.
	Subscribe(ctx context.Context, since time.Time, sink EventSink) error
}

// EventSink receives a subscription's events; see EventLog.Subscribe.
type EventSink interface {
	// Events is called with one or more events in commit order. The slice
	// is the sink's to keep.
	Events(evs []Event)
	// Alive reports that the link to the backend was proven working (a
	// round trip completed) at the local time at.
	Alive(at time.Time)
}

// EventAliveInterval is the longest a healthy subscription goes without
// calling EventSink.Alive. It is well inside the staleness bound (250 ms by
// default) a subscriber enforces on its own caches.
const EventAliveInterval = 50 * time.Millisecond

// DefaultEventRetention is how long a store keeps events for replay
// (at least; stores may keep them longer).
const DefaultEventRetention = 5 * time.Minute

// ErrNoEventLog is returned by [Events] for a store without an event log;
// it matches errors.ErrUnsupported.
var ErrNoEventLog = errors.Join(errors.New("latch/store: the store keeps no event log"), errors.ErrUnsupported)

// Events returns s's event log, or ErrNoEventLog.
func Events(s Store) (EventLog, error) {
	if l, ok := s.(EventLog); ok {
		return l, nil
	}
	return nil, ErrNoEventLog
}

// RevokeEvents returns the events a store appends for revoking the session
// id of subject with reason at at (see EventLog).
func RevokeEvents(id ID, subject, reason string, at time.Time) []Event {
	evs := []Event{{Type: EventSessionRevoked, SessionID: id, Subject: subject, Reason: reason, At: at}}
	if reason == ReasonReuse {
		evs = append(evs, Event{Type: EventRefreshReuse, SessionID: id, Subject: subject, Reason: reason, At: at})
	}
	return evs
}
