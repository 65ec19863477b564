package latch

import (
	"context"
	"log/slog"
	"time"
)

// EventType names a step in a session's life.
type EventType string

// Events the Manager (and the HTTP layer) emit.
const (
	EventCreated          EventType = "session.created"
	EventRenewed          EventType = "session.renewed"
	EventRefreshed        EventType = "session.refreshed"
	EventRefreshReuse     EventType = "session.refresh_reuse_detected"
	EventRevoked          EventType = "session.revoked" // Reason: logout, admin, revoke-all, evicted, replaced, refresh-reuse
	EventExpired          EventType = "session.expired" // Reason: idle-timeout or absolute-timeout
	EventCSRFRejected     EventType = "csrf.rejected"
	EventValidationFailed EventType = "validation.failed" // Reason says why
)

// Reasons a validation fails, in Event.Reason.
const (
	FailMalformed   = "malformed"
	FailUnknown     = "unknown"
	FailMismatch    = "secret-mismatch"
	FailRevoked     = "revoked"
	FailExpired     = "expired"
	FailUnavailable = "store-unavailable"
	FailDPoP        = "dpop-proof" // a DPoP-bound session refreshed, or its access token used, without a valid proof
)

// Event is an audit record. It never contains a token or any other secret:
// only the public session ID, the subject and metadata.
type Event struct {
	Type      EventType
	Time      time.Time
	SessionID string // empty when the token named no session
	Subject   string // empty when unknown
	Reason    string
	IP        string
}

// Observer receives events. Observe is called synchronously on the request
// path, so it should be quick; it must be safe for concurrent use.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// SlogObserver logs every event to l: failures and security events at Warn,
// the rest at Info.
func SlogObserver(l *slog.Logger) Observer {
	return ObserverFunc(func(ctx context.Context, e Event) {
		level := slog.LevelInfo
		switch e.Type {
		case EventRefreshReuse, EventCSRFRejected, EventValidationFailed:
			level = slog.LevelWarn
		}
		if !l.Enabled(ctx, level) {
			return
		}
		attrs := make([]slog.Attr, 0, 5)
		if e.SessionID != "" {
			attrs = append(attrs, slog.String("session_id", e.SessionID))
		}
		if e.Subject != "" {
			attrs = append(attrs, slog.String("subject", e.Subject))
		}
		if e.Reason != "" {
			attrs = append(attrs, slog.String("reason", e.Reason))
		}
		if e.IP != "" {
			attrs = append(attrs, slog.String("ip", e.IP))
		}
		l.LogAttrs(ctx, level, string(e.Type), attrs...)
	})
}

// MultiObserver sends every event to each observer in turn.
func MultiObserver(obs ...Observer) Observer {
	return ObserverFunc(func(ctx context.Context, e Event) {
		for _, o := range obs {
			o.Observe(ctx, e)
		}
	})
}

// DiscardObserver drops every event.
var DiscardObserver Observer = ObserverFunc(func(context.Context, Event) {})
