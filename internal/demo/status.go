package demo

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/latch-sessions/latch"
)

// statusJSON is the answer of GET /session/status. It holds no secret.
type statusJSON struct {
	Authenticated bool `json:"authenticated"`
	// Reason says why not: "expired" (idle or absolute deadline) or
	// "ended" (revoked, signed out, unknown or no cookie).
	Reason     string `json:"reason,omitempty"`
	SessionID  string `json:"session_id,omitempty"`
	IdleLeftMS int64  `json:"idle_left_ms"`
}

// status tells the page how long its session has left, so the countdown
// follows activity in other tabs and notices a revocation.
//
// It is served outside the middleware on purpose: validating the cookie
// there would record activity, and a page polling it would keep its session
// alive forever, defeating the idle timeout the countdown shows. So it
// checks the cookie with Manager.Peek, which never writes. It is a read-only GET that changes nothing, so it needs no CSRF
// token; the browser's same-origin policy keeps other sites from reading
// the answer.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Vary", "Cookie")
	st, err := h.peek(r)
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "demo: session store unavailable", slog.String("err", err.Error()))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"store_unavailable"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// peek checks the request's session cookie without touching the session.
func (h *Handler) peek(r *http.Request) (statusJSON, error) {
	c, err := r.Cookie(h.cookie)
	if err != nil {
		return statusJSON{Reason: "ended"}, nil
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	s, err := h.m.Peek(ctx, c.Value)
	switch {
	case errors.Is(err, latch.ErrExpired):
		return statusJSON{Reason: "expired"}, nil
	case errors.Is(err, latch.ErrUnavailable):
		return statusJSON{}, err
	case err != nil:
		return statusJSON{Reason: "ended"}, nil // invalid, unknown or revoked
	}
	left := s.Deadline().Sub(h.now())
	if left <= 0 {
		return statusJSON{Reason: "expired"}, nil
	}
	return statusJSON{Authenticated: true, SessionID: s.ID(), IdleLeftMS: left.Milliseconds()}, nil
}
