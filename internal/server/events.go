package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
)

// DefaultEventHeartbeat is how often GET /v1/events sends a heartbeat
// comment while the server's link to the store is proven alive.
const DefaultEventHeartbeat = 100 * time.Millisecond

// DefaultEventStaleness is the default of Options.EventStaleness, the
// clients' own default bound: heartbeats carry the age of the store link's
// last proof, so a client's bound already covers this replica's link, and
// a replica stops sending them only once no client could trust them.
const DefaultEventStaleness = latch.DefaultStalenessBound

// eventWriteTimeout bounds one write to an event stream: a client that
// stops reading is dropped instead of holding the subscription forever.
const eventWriteTimeout = 10 * time.Second

// eventData is the JSON data of a stream event (docs/protocol.md, section
// 3). It has public identifiers only: no token, hash or secret exists in a
// latch.StreamEvent to be copied here.
type eventData struct {
	SessionID string `json:"session_id,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Except    string `json:"except,omitempty"`
	Reason    string `json:"reason,omitempty"`
	KeyID     string `json:"kid,omitempty"`
	At        string `json:"at"`
}

// events serves GET /v1/events: the session event stream as Server-Sent
// Events. Heartbeats (": hb") are sent every Options.EventHeartbeat only
// while the manager's subscription to the store is live (proven within the
// staleness bound), and events are held back while it is not, so that a
// client's notion of "live" is end to end: a replica cut off from its store
// goes silent and its clients stop trusting their caches.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	opts := latch.SubscribeOptions{LastEventID: r.Header.Get("Last-Event-ID")}
	if len(opts.LastEventID) > 256 {
		return badRequest("Last-Event-ID is too long")
	}
	if ts := r.URL.Query().Get("types"); ts != "" {
		for t := range strings.SplitSeq(ts, ",") {
			opts.Types = append(opts.Types, latch.EventType(strings.TrimSpace(t)))
		}
	}
	sub, err := s.mgr.Subscribe(r.Context(), opts)
	switch {
	case errors.Is(err, latch.ErrUnknownEventType):
		return badRequest("types names an unknown event type")
	case errors.Is(err, latch.ErrNoEvents):
		return errorf(http.StatusServiceUnavailable, CodeStoreUnavailable, "this store keeps no event log")
	case err != nil:
		return err
	}
	defer sub.Close()
	s.metrics.subscribers.Inc()
	defer s.metrics.subscribers.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a buffering proxy would hide heartbeats
	rc := http.NewResponseController(w)
	// The server's read timeout would end the request's context mid-stream.
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 4096)
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		return bw.Flush() == nil && rc.Flush() == nil
	}
	bw.WriteString("retry: 1000\n\n")
	live := heartbeat(bw, sub)
	if !flush() {
		return nil
	}
	tick := time.NewTicker(s.opts.EventHeartbeat)
	defer tick.Stop()
	ready := sub.Ready()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.streamsDone:
			return nil
		case <-ready:
			if !live {
				continue // held until the store link is proven again
			}
		case <-tick.C:
			if live = heartbeat(bw, sub); !live {
				continue
			}
		}
		for _, e := range sub.Take() {
			s.writeEvent(bw, e)
		}
		if !flush() {
			return nil
		}
	}
}

// endStreams ends every open event stream (at shutdown).
func (s *Server) endStreams() { s.endOnce.Do(func() { close(s.streamsDone) }) }

func (s *Server) writeEvent(bw *bufio.Writer, e latch.StreamEvent) {
	data, _ := json.Marshal(eventData{ // strings only: cannot fail
		SessionID: e.SessionID, Subject: e.Subject, Except: e.Except, Reason: e.Reason, KeyID: e.KeyID,
		At: e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
	bw.WriteString("id: ")
	bw.WriteString(e.ID)
	bw.WriteString("\nevent: ")
	bw.WriteString(string(e.Type))
	bw.WriteString("\ndata: ")
	bw.Write(data)
	bw.WriteString("\n\n")
	s.metrics.eventsDelivered.Inc()
	if !e.Time.IsZero() {
		s.metrics.eventLag.Observe(max(0, s.now().Sub(e.Time)).Seconds())
	}
}

// keysChanged publishes a keys.changed event. The key change itself has
// happened; a failure to publish is logged (clients still refetch the JWKS
// when its max-age runs out).
func (s *Server) keysChanged(ctx context.Context, kid, reason string) {
	if err := s.mgr.PublishKeysChanged(ctx, kid, reason); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "publishing keys.changed failed", slog.String("kid", kid), slog.String("err", err.Error()))
	}
}

// heartbeat writes ": hb N", N being how many milliseconds ago this
// replica's link to the store was last proven, if that is within the
// staleness bound, and reports whether it was. A client adds N to the time
// since the heartbeat arrived, so its bound holds end to end, across this
// replica's own link to the store (docs/protocol.md section 3).
func heartbeat(bw *bufio.Writer, sub *latch.Subscription) bool {
	age, live := sub.ProvenAge()
	if !live {
		return false
	}
	var b [32]byte
	bw.Write(strconv.AppendInt(append(b[:0], ": hb "...), age.Milliseconds(), 10))
	bw.WriteString("\n\n")
	return true
}
