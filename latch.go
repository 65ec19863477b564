// Package latch manages login sessions: it creates them after your
// application has authenticated a user, validates the tokens that carry them,
// renews them on privilege change, rotates refresh tokens, lists a user's
// sessions and revokes one or all of them.
//
// Most users need three calls: [New] with a store, [Manager.Create] at login
// and [Manager.Validate] on every request. The latchhttp package wraps them in
// net/http middleware with secure cookies and CSRF protection; latch serve
// offers them over HTTP to services in any language.
//
// # Security model
//
//   - Session IDs are 128 bits from a CSPRNG (plus a 16-bit subject tag); each
//     token adds a 256-bit secret. The store holds only SHA-256 hashes of
//     secrets and compares them in constant time, so a dump of the store, a
//     Redis MONITOR trace or a log line cannot be replayed as a session.
//   - Tokens are prefixed by kind (lts_ session, ltr_ refresh) and
//     checksummed: a token of one kind is never accepted as another, and
//     garbage is rejected without a store read. Tokens are [Token] values that
//     redact themselves in fmt and log/slog output; no error or event ever
//     contains one.
//   - Create revokes the session a client carried before login (fixation);
//     Renew replaces every secret of a session, so old tokens stop working at
//     once; revocation is a store write, visible to every replica sharing the
//     store.
//   - Refresh tokens are single-use. Each refresh derives the next secret
//     from the presented one (HMAC under a per-family key), so requests that
//     race with the same token within the grace window get the same
//     successor, and presenting a rotated token after the window is treated
//     as theft: the whole session is revoked.
//   - Fail closed: any store error, timeout or malformed record is reported
//     as [ErrUnavailable], never as a valid session.
//   - Idle and absolute deadlines are enforced on every validation; activity
//     is written at most once per touch interval.
//
// # Time and randomness
//
// [Config.Now] and [Config.Rand] are injectable so that tests run on a fake
// clock and deterministic sources; leave them nil in production.
package latch

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store"
)

// Defaults for the zero values of Config.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 24 * time.Hour
	DefaultTouchInterval   = time.Minute
	DefaultMaxPerSubject   = 100
	DefaultRefreshGrace    = 10 * time.Second
	DefaultAccessTokenTTL  = 10 * time.Minute
	DefaultMaxDataSize     = 16 << 10
)

// AccessTokenIssuer signs access tokens; *accesstoken.Issuer implements it.
// Issue must be deterministic for identical claims and signing key, so that
// concurrent refreshes within the grace window get identical tokens.
type AccessTokenIssuer interface {
	Issue(ctx context.Context, c accesstoken.Claims) (string, error)
}

// Config configures a Manager. Only Store is required; every zero value
// means the safe default.
type Config struct {
	// Store keeps session records. Required.
	Store store.Store

	// IdleTimeout ends a session not used for this long (default 30 min).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends every session this long after creation, whatever
	// its activity (default 24 h).
	AbsoluteTimeout time.Duration
	// TouchInterval is how stale the recorded activity may get before a
	// validation writes it (default 1 min). It bounds how often the hot path
	// writes to the store.
	TouchInterval time.Duration
	// MaxPerSubject caps a subject's live sessions (default 100); beyond it
	// the least recently seen is evicted. Negative means no cap.
	MaxPerSubject int
	// MaxDataSize caps the encoded application data (default 16 KiB, at
	// most store.MaxValueLen).
	MaxDataSize int

	// AccessTokens, when set, makes Create, Renew and Refresh also issue
	// signed access tokens.
	AccessTokens AccessTokenIssuer
	// AccessTokenTTL is the lifetime of access tokens (default 10 min).
	AccessTokenTTL time.Duration
	// RefreshGrace is how long after a rotation the previous refresh token
	// still yields the same successor instead of counting as reuse
	// (default 10 s). It cannot be turned off: set it to a small value.
	RefreshGrace time.Duration

	// Events is the store's event log that Subscribe streams (default:
	// Store, if it implements store.EventLog). Set it when Store is a
	// wrapper that hides the capability.
	Events store.EventLog
	// EventRetention and EventRetentionCount size the window of recent
	// events kept for resuming a subscription: an event is dropped once it
	// is older than EventRetention and EventRetentionCount newer ones are
	// kept (defaults 5 min and 10,000).
	EventRetention      time.Duration
	EventRetentionCount int
	// StalenessBound is how long a cache fed by the event stream may go
	// without proof that the stream works (default 250 ms): subscriptions
	// report Live only while the manager's link to the store was proven
	// within it.
	StalenessBound time.Duration

	// Observer receives audit events (default: JSON lines on stderr via
	// log/slog).
	Observer Observer
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Rand is a cryptographically secure random source (default crypto/rand).
	Rand io.Reader
}

// Manager runs the session lifecycle over a Store. It is safe for
// concurrent use; create one per store and share it.
type Manager struct {
	cfg   Config // defaults filled in by New
	hub   *hub
	views *views
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("latch: Config.Store is required")
	}
	def := func(d *time.Duration, v time.Duration, name string) error {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			return fmt.Errorf("latch: Config.%s must be positive", name)
		}
		return nil
	}
	for _, f := range []struct {
		d    *time.Duration
		v    time.Duration
		name string
	}{
		{&cfg.IdleTimeout, DefaultIdleTimeout, "IdleTimeout"},
		{&cfg.AbsoluteTimeout, DefaultAbsoluteTimeout, "AbsoluteTimeout"},
		{&cfg.TouchInterval, DefaultTouchInterval, "TouchInterval"},
		{&cfg.RefreshGrace, DefaultRefreshGrace, "RefreshGrace"},
		{&cfg.AccessTokenTTL, DefaultAccessTokenTTL, "AccessTokenTTL"},
		{&cfg.EventRetention, DefaultEventRetention, "EventRetention"},
		{&cfg.StalenessBound, DefaultStalenessBound, "StalenessBound"},
	} {
		if err := def(f.d, f.v, f.name); err != nil {
			return nil, err
		}
	}
	if cfg.TouchInterval >= cfg.IdleTimeout {
		return nil, fmt.Errorf("latch: Config.TouchInterval (%v) must be shorter than IdleTimeout (%v), or activity could go unrecorded until the session expires", cfg.TouchInterval, cfg.IdleTimeout)
	}
	switch {
	case cfg.EventRetentionCount == 0:
		cfg.EventRetentionCount = DefaultEventRetentionCount
	case cfg.EventRetentionCount < 0:
		return nil, errors.New("latch: Config.EventRetentionCount must be positive")
	}
	if cfg.Events == nil {
		cfg.Events, _ = cfg.Store.(store.EventLog)
	}
	if cfg.MaxPerSubject == 0 {
		cfg.MaxPerSubject = DefaultMaxPerSubject
	}
	switch {
	case cfg.MaxDataSize == 0:
		cfg.MaxDataSize = DefaultMaxDataSize
	case cfg.MaxDataSize < 0 || cfg.MaxDataSize > store.MaxValueLen:
		return nil, fmt.Errorf("latch: Config.MaxDataSize must be between 1 and %d", store.MaxValueLen)
	}
	if cfg.Observer == nil {
		cfg.Observer = SlogObserver(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	m := &Manager{cfg: cfg, views: new(views)}
	m.hub = newHub(m)
	return m, nil
}

// Config returns the effective configuration, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Now returns the manager's current time (Config.Now).
func (m *Manager) Now() time.Time { return m.cfg.Now() }

// Emit sends e to the manager's observer, stamping its time if unset. It is
// for integrations, such as the HTTP layer reporting a CSRF rejection.
func (m *Manager) Emit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = m.cfg.Now().UTC()
	}
	m.cfg.Observer.Observe(ctx, e)
	m.hub.observeLocal(e)
}

func (m *Manager) emitFor(ctx context.Context, t EventType, r *store.Record, reason string) {
	m.Emit(ctx, Event{Type: t, SessionID: r.ID.String(), Subject: r.Subject, Reason: reason, IP: r.IP})
}

// storeErr maps a store failure to the manager's errors, failing closed: an
// error that is neither not-found nor conflict is unavailability.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrUnavailable):
		return err
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}
