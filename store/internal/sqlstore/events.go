package sqlstore

import (
	"strconv"
	"time"

	"github.com/latch-sessions/latch/store"
)

// The event log's row, as both SQL stores keep it: seq (the commit order,
// also the event's ID), at (Unix nanoseconds), type, and the event's
// identifiers as binary columns, empty when unset. It holds no token, hash
// or secret, because store.Event has none.

// EventColumns lists an events table's columns in the order of
// [EventRow.Dest] (and, without seq, of [EventArgs]).
const EventColumns = `seq, at, type, session_id, subject, except_id, reason, kid`

// EventArgs returns e's column values for an INSERT, in the order of
// EventColumns without seq: at, type, session_id, subject, except_id,
// reason, kid.
func EventArgs(e store.Event) []any {
	return []any{RevokeTime(e.At), e.Type, eventID(e.SessionID), []byte(e.Subject), eventID(e.Except), []byte(e.Reason), e.KeyID}
}

// eventID is an ID's column value: empty for the zero ID ("none").
func eventID(id store.ID) []byte {
	if id.IsZero() {
		return []byte{}
	}
	return id[:]
}

// EventRow scans one row of EventColumns.
type EventRow struct {
	Seq, At                            int64
	Type, KeyID                        string
	SessionID, Subject, Except, Reason []byte
}

// Dest returns the scan destinations for EventColumns.
func (r *EventRow) Dest() []any {
	return []any{&r.Seq, &r.At, &r.Type, &r.SessionID, &r.Subject, &r.Except, &r.Reason, &r.KeyID}
}

// Event decodes the row. ok is false for a row latch did not write (a
// malformed session ID): it names no session, so it cannot revoke one, and
// the reader skips it.
func (r *EventRow) Event() (e store.Event, ok bool) {
	e = store.Event{ID: strconv.FormatInt(r.Seq, 10), Type: r.Type, Subject: string(r.Subject), Reason: string(r.Reason), KeyID: r.KeyID, At: time.Unix(0, r.At).UTC()}
	var err error
	if len(r.SessionID) > 0 {
		if e.SessionID, err = ID(r.SessionID); err != nil {
			return store.Event{}, false
		}
	}
	if len(r.Except) > 0 {
		if e.Except, err = ID(r.Except); err != nil {
			return store.Event{}, false
		}
	}
	return e, true
}

// ScanEvents reads every event row of rows (EventColumns, in sequence
// order), moving *last to the newest sequence number read, skipped rows
// included; the caller closes rows.
func ScanEvents[R Rows](rows R, last *int64) ([]store.Event, error) {
	var evs []store.Event
	for rows.Next() {
		var r EventRow
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, err
		}
		*last = r.Seq
		if e, ok := r.Event(); ok {
			evs = append(evs, e)
		}
	}
	return evs, rows.Err()
}
