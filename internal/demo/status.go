package demo

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
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
// checks the cookie the way Manager.Validate does (parse, load, compare the
// secret's hash in constant time, revoked and deadline checks) but never
// writes. It is a read-only GET that changes nothing, so it needs no CSRF
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
	ended := statusJSON{Reason: "ended"}
	c, err := r.Cookie(h.cookie)
	if err != nil {
		return ended, nil
	}
	id, secret, err := token.Parse(token.Session, c.Value)
	if err != nil {
		return ended, nil
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	rec, err := h.m.Store().Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ended, nil
	case err != nil:
		return statusJSON{}, err
	}
	if !token.Equal(token.Hash(token.Session, secret), rec.VerifierHash) || rec.Revoked() {
		return ended, nil
	}
	left := rec.Deadline().Sub(h.now())
	if left <= 0 {
		return statusJSON{Reason: "expired"}, nil
	}
	return statusJSON{Authenticated: true, SessionID: rec.ID.String(), IdleLeftMS: left.Milliseconds()}, nil
}
