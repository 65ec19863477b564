package latch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/token"
	"github.com/latch-sessions/latch/store"
)

// maxUserAgent caps the stored User-Agent; longer values are truncated.
const maxUserAgent = 512

// Client is the metadata of the client making a request, recorded for
// "your devices" pages. Both fields are optional.
type Client struct {
	IP        string // a textual IP address
	UserAgent string
}

// NewSession describes a session to create after the application has
// authenticated Subject.
type NewSession struct {
	Subject string          // required, 1–256 bytes of UTF-8 without control characters
	Data    json.RawMessage // application data: a JSON object, or nil
	Claims  json.RawMessage // claims for access tokens: a JSON object of non-reserved names, or nil
	Client  Client
	// AuthTime is when the user proved who they are (default: now); not
	// later than now plus AuthTimeLeeway.
	AuthTime time.Time
	// ACR and AMR say how (RFC 9470, RFC 8176): the authentication context
	// class and the methods, e.g. "pwd", "otp". Optional; see
	// CheckAuthContext for their bounds. Access tokens carry them.
	ACR string
	AMR []string
	// JKT, if set, binds the session to a DPoP key (RFC 9449): the RFC
	// 7638 SHA-256 thumbprint, base64url, of a key whose proof the caller
	// has verified (package dpop). Its access tokens then carry cnf.jkt,
	// and refreshing it needs a proof by that key ([Manager.RefreshProof]).
	// The binding lasts the session's life; renewal keeps it.
	JKT string
	// BindProof, if set, checks a DPoP proof the caller relays and returns
	// its key's thumbprint, which then binds the session as JKT does (set
	// at most one of them). It runs once every other field was found
	// valid and before anything is written (Replace included), so a create
	// refused for its input spends no proof (the client may retry with
	// it), and a refused proof, whose error Create returns as is, changes
	// nothing.
	BindProof func(context.Context) (string, error)
	// Replace is the session token the client carried before this login,
	// if any. It is revoked (fixation defence) if it is valid.
	Replace string
}

// Issued is what Create and Renew hand out. The tokens are secrets for the
// client only.
type Issued struct {
	Session         *Session
	SessionToken    Token
	RefreshToken    Token
	AccessToken     Token     // zero unless Config.AccessTokens is set
	AccessExpiresAt time.Time // zero unless AccessToken is set
}

// Create starts a session for an authenticated subject. If p.Replace is a
// valid session token, that session is revoked first, so a token planted
// before login is never promoted. If the subject then has more than
// MaxPerSubject live sessions, the least recently seen is evicted.
func (m *Manager) Create(ctx context.Context, p NewSession) (*Issued, error) {
	if err := checkSubject(p.Subject); err != nil {
		return nil, err
	}
	data, err := m.checkData(p.Data)
	if err != nil {
		return nil, err
	}
	claims, err := checkClaims(p.Claims)
	if err != nil {
		return nil, err
	}
	client, err := checkClient(p.Client)
	if err != nil {
		return nil, err
	}
	if err := CheckAuthContext(p.ACR, p.AMR); err != nil {
		return nil, err
	}
	var jkt [32]byte
	if p.JKT != "" {
		if jkt, err = dpop.Thumbprint(p.JKT); err != nil {
			return nil, badInput("dpop_jkt", "must be a base64url SHA-256 thumbprint (RFC 7638)")
		}
	}
	now := m.cfg.Now().UTC()
	authTime := now
	if !p.AuthTime.IsZero() {
		if authTime, err = checkAuthTime(p.AuthTime, now); err != nil {
			return nil, err
		}
	}
	if p.BindProof != nil {
		if p.JKT != "" {
			return nil, badInput("dpop_jkt", "set at most one of a DPoP proof and a thumbprint")
		}
		s, err := p.BindProof(ctx)
		if err != nil {
			return nil, err
		}
		if jkt, err = dpop.Thumbprint(s); err != nil {
			return nil, err
		}
	}
	if p.Replace != "" {
		if err := m.revokeByToken(ctx, p.Replace, store.ReasonReplaced); err != nil {
			return nil, err
		}
	}
	id, err := store.NewID(p.Subject, m.cfg.Rand)
	if err != nil {
		return nil, err
	}
	rec := &store.Record{
		ID:            id,
		Subject:       p.Subject,
		CreatedAt:     now,
		AuthTime:      authTime,
		ACR:           p.ACR,
		AMR:           slices.Clone(p.AMR),
		JKT:           jkt,
		LastSeenAt:    now,
		IdleExpiresAt: now.Add(m.cfg.IdleTimeout),
		ExpiresAt:     now.Add(m.cfg.AbsoluteTimeout),
		IP:            client.IP,
		UserAgent:     client.UserAgent,
		Data:          data,
		Claims:        claims,
	}
	if len(rec.AMR) == 0 {
		rec.AMR = nil
	}
	sessionSecret, refreshSecret, err := m.newSecrets(rec)
	if err != nil {
		return nil, err
	}
	max := m.cfg.MaxPerSubject
	if max < 0 {
		max = 0
	}
	evicted, err := m.cfg.Store.Create(ctx, rec, max)
	if err != nil {
		return nil, storeErr(err)
	}
	rec.Version = 1
	m.emitFor(ctx, EventCreated, rec, "")
	for _, e := range evicted {
		m.Emit(ctx, Event{Type: EventRevoked, SessionID: e.String(), Subject: rec.Subject, Reason: store.ReasonEvicted})
	}
	return m.issue(ctx, rec, sessionSecret, refreshSecret, now, "")
}

// newSecrets draws fresh session, CSRF and refresh-family secrets into rec
// and returns the two token secrets.
func (m *Manager) newSecrets(rec *store.Record) (session, refresh token.Secret, err error) {
	if session, err = token.NewSecret(m.cfg.Rand); err != nil {
		return
	}
	if refresh, err = token.NewSecret(m.cfg.Rand); err != nil {
		return
	}
	if _, err = m.cfg.Rand.Read(rec.CSRFSecret[:]); err != nil {
		return
	}
	if _, err = m.cfg.Rand.Read(rec.Refresh.Key[:]); err != nil {
		return
	}
	rec.VerifierHash = token.Hash(token.Session, session)
	rec.Refresh = store.Refresh{Key: rec.Refresh.Key, Current: token.Hash(token.Refresh, refresh)}
	return
}

// issue builds the tokens handed to a client for rec. jti names the access
// token; empty means a random one.
func (m *Manager) issue(ctx context.Context, rec *store.Record, session, refresh token.Secret, iat time.Time, jti string) (*Issued, error) {
	out := &Issued{
		Session:      &Session{rec: rec},
		SessionToken: Token{token.Encode(token.Session, rec.ID, session)},
		RefreshToken: Token{token.Encode(token.Refresh, rec.ID, refresh)},
	}
	if err := m.accessToken(ctx, rec, iat, jti, &out.AccessToken, &out.AccessExpiresAt); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *Manager) accessToken(ctx context.Context, rec *store.Record, iat time.Time, jti string, tok *Token, exp *time.Time) error {
	if m.cfg.AccessTokens == nil {
		return nil
	}
	if jti == "" {
		var b [jtiRandLen]byte
		if _, err := m.cfg.Rand.Read(b[:]); err != nil {
			return err
		}
		jti = newJTI(rec, b[:])
	}
	iat = iat.Truncate(time.Second)
	c := accesstoken.Claims{
		Subject:   rec.Subject,
		IssuedAt:  iat,
		ExpiresAt: iat.Add(m.cfg.AccessTokenTTL),
		ID:        jti,
		SessionID: rec.ID.String(),
		AuthTime:  rec.AuthTime,
		ACR:       rec.ACR,
		AMR:       rec.AMR,
		Extra:     rec.Claims,
	}
	if rec.JKT != ([32]byte{}) {
		c.JKT = dpop.EncodeThumbprint(rec.JKT)
	}
	// An access token never outlives its session.
	if d := rec.ExpiresAt; c.ExpiresAt.After(d) {
		c.ExpiresAt = d.Truncate(time.Second)
	}
	s, err := m.cfg.AccessTokens.Issue(ctx, c)
	if err != nil {
		return err
	}
	*tok, *exp = Token{s}, c.ExpiresAt
	return nil
}

// Validate checks a session token and returns its session. It reads the
// store once and writes only when the recorded activity is older than the
// touch interval. Failures match ErrInvalidToken, ErrRevoked, ErrExpired
// (with ErrIdleTimeout or ErrAbsoluteTimeout) or ErrUnavailable.
func (m *Manager) Validate(ctx context.Context, sessionToken string) (*Session, error) {
	return m.ValidateClient(ctx, sessionToken, Client{})
}

// ValidateClient is Validate that also records the client's metadata when it
// touches the session.
func (m *Manager) ValidateClient(ctx context.Context, sessionToken string, c Client) (*Session, error) {
	return m.ValidateFor(ctx, sessionToken, c, AuthRequirement{})
}

// ValidateFor is ValidateClient for a sensitive action: a live session
// whose authentication does not meet need fails with an
// *InsufficientAuthError (matching ErrInsufficientAuth) and records no
// activity, so a refused step-up changes nothing. A need that fails its
// Valid is refused as bad input.
func (m *Manager) ValidateFor(ctx context.Context, sessionToken string, c Client, need AuthRequirement) (*Session, error) {
	if err := need.Valid(); err != nil {
		return nil, err
	}
	rec, err := m.authenticate(ctx, sessionToken, c.IP)
	if err != nil {
		return nil, err
	}
	return m.live(ctx, rec, c, true, need, nil)
}

// Peek checks a session token like Validate but records no activity, so
// it does not keep the session alive. It is for status polls (a page asking
// how long its session has left), not for authenticating requests.
func (m *Manager) Peek(ctx context.Context, sessionToken string) (*Session, error) {
	rec, err := m.authenticate(ctx, sessionToken, "")
	if err != nil {
		return nil, err
	}
	return m.live(ctx, rec, Client{}, false, AuthRequirement{}, nil)
}

// authenticate parses a session token, loads its record and compares the
// secret's hash in constant time.
func (m *Manager) authenticate(ctx context.Context, sessionToken, ip string) (*store.Record, error) {
	id, secret, err := token.Parse(token.Session, sessionToken)
	if err != nil {
		m.Emit(ctx, Event{Type: EventValidationFailed, Reason: FailMalformed, IP: ip})
		return nil, ErrInvalidToken
	}
	rec, err := m.load(ctx, id, ip, false)
	if err != nil {
		return nil, err
	}
	h := token.Hash(token.Session, secret)
	if !token.Equal(h, rec.VerifierHash) && !rec.Revoked() {
		// The cached copy may predate a renewal through another replica.
		if rec, err = m.load(ctx, id, ip, true); err != nil {
			return nil, err
		}
	}
	if !token.Equal(h, rec.VerifierHash) {
		m.emitFor(ctx, EventValidationFailed, rec, FailMismatch)
		return nil, ErrInvalidToken
	}
	return rec, nil
}

// ValidateAccess returns the live session of an access token that a
// verifier (accesstoken.Verifier) has already checked, and records activity
// like Validate. It refuses a token whose subject is not its session's, and
// a token issued before the session was last renewed: renewal ends every
// older token, access tokens included. Failures match ErrInvalidToken,
// ErrRevoked, ErrExpired or ErrUnavailable; a session that no longer exists
// is reported as ErrRevoked.
func (m *Manager) ValidateAccess(ctx context.Context, c accesstoken.Claims, client Client) (*Session, error) {
	return m.ValidateAccessFor(ctx, c, client, AuthRequirement{})
}

// ValidateAccessFor is ValidateAccess for a sensitive action, as
// ValidateFor: the requirement is checked against the session's current
// authentication (a renewal with a new AuthTime ends older tokens anyway).
func (m *Manager) ValidateAccessFor(ctx context.Context, c accesstoken.Claims, client Client, need AuthRequirement) (*Session, error) {
	return m.ValidateAccessProof(ctx, c, client, need, nil)
}

// ValidateAccessProof is ValidateAccessFor for a token that may be
// DPoP-bound (RFC 9449): prove, if not nil, checks the proof that came with
// it. It runs only once the session was found live and meeting need, so a
// proof's jti is spent only on an otherwise good token, and before
// activity is recorded, so a refused proof changes nothing: a copied bound
// token without its key neither keeps the session alive nor rewrites its
// client. Its error is returned as is.
func (m *Manager) ValidateAccessProof(ctx context.Context, c accesstoken.Claims, client Client, need AuthRequirement, prove func(context.Context) error) (*Session, error) {
	if err := need.Valid(); err != nil {
		return nil, err
	}
	id, err := store.ParseID(c.SessionID)
	if err != nil {
		return nil, ErrInvalidToken
	}
	rec, err := m.accessRecord(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if rec.Subject != c.Subject {
		m.emitFor(ctx, EventValidationFailed, rec, FailMismatch)
		return nil, ErrInvalidToken
	}
	if !familyTagMatches(rec, c.ID) && !rec.Revoked() {
		// The cached copy may predate a renewal through another replica.
		if rec, err = m.accessRecord(ctx, id, true); err != nil {
			return nil, err
		}
	}
	if !familyTagMatches(rec, c.ID) {
		m.emitFor(ctx, EventValidationFailed, rec, FailRevoked)
		return nil, ErrRevoked
	}
	return m.live(ctx, rec, client, true, need, prove)
}

// accessRecord reads an access token's record (fresh: past any cache); a
// session that no longer exists is ErrRevoked.
func (m *Manager) accessRecord(ctx context.Context, id store.ID, fresh bool) (*store.Record, error) {
	rec, err := m.read(ctx, id, fresh)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrRevoked
	}
	return rec, storeErr(err)
}

// live checks rec's deadlines and revocation, need and then prove (if not
// nil), and if touch is set records activity when the recorded one is
// older than the touch interval.
func (m *Manager) live(ctx context.Context, rec *store.Record, c Client, touch bool, need AuthRequirement, prove func(context.Context) error) (*Session, error) {
	now := m.cfg.Now()
	if err := m.checkLive(ctx, rec, now); err != nil {
		return nil, err
	}
	if !need.IsZero() {
		if err := need.Check(rec.AuthTime, rec.ACR, now); err != nil {
			return nil, err
		}
	}
	if prove != nil {
		if err := prove(ctx); err != nil {
			if errors.Is(err, dpop.ErrInvalidProof) {
				m.emitFor(ctx, EventValidationFailed, rec, FailDPoP)
			}
			return nil, err
		}
	}
	if !touch || now.Sub(rec.LastSeenAt) < m.cfg.TouchInterval {
		return m.views.of(rec), nil
	}
	return m.touch(ctx, rec, now, c)
}

// read is Store.Get, or with fresh store.GetFresh (past any cache).
func (m *Manager) read(ctx context.Context, id store.ID, fresh bool) (*store.Record, error) {
	if fresh {
		return store.GetFresh(ctx, m.cfg.Store, id)
	}
	return m.cfg.Store.Get(ctx, id)
}

// load reads a record for a token, mapping failures to validation errors;
// fresh reads past any cache (store.GetFresh).
func (m *Manager) load(ctx context.Context, id store.ID, ip string, fresh bool) (*store.Record, error) {
	rec, err := m.read(ctx, id, fresh)
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, store.ErrNotFound):
		m.Emit(ctx, Event{Type: EventValidationFailed, SessionID: id.String(), Reason: FailUnknown, IP: ip})
		return nil, ErrInvalidToken
	default:
		m.Emit(ctx, Event{Type: EventValidationFailed, SessionID: id.String(), Reason: FailUnavailable, IP: ip})
		return nil, storeErr(err)
	}
}

// checkLive reports why rec is not live at now, emitting the event.
func (m *Manager) checkLive(ctx context.Context, rec *store.Record, now time.Time) error {
	switch {
	case rec.Revoked():
		m.emitFor(ctx, EventValidationFailed, rec, FailRevoked)
		return ErrRevoked
	case !now.Before(rec.ExpiresAt):
		m.emitFor(ctx, EventExpired, rec, "absolute-timeout")
		return ErrAbsoluteTimeout
	case !now.Before(rec.IdleExpiresAt):
		m.emitFor(ctx, EventExpired, rec, "idle-timeout")
		return ErrIdleTimeout
	}
	return nil
}

// touch records activity. Losing the compare-and-swap to a concurrent write
// is fine (that write is newer); a store failure fails closed.
func (m *Manager) touch(ctx context.Context, rec *store.Record, now time.Time, c Client) (*Session, error) {
	next := rec.Clone()
	next.LastSeenAt = now.UTC()
	next.IdleExpiresAt = next.LastSeenAt.Add(m.cfg.IdleTimeout)
	if c, err := checkClient(c); err == nil {
		if c.IP != "" {
			next.IP = c.IP
		}
		if c.UserAgent != "" {
			next.UserAgent = c.UserAgent
		}
	}
	switch err := m.cfg.Store.Update(ctx, next); {
	case err == nil:
		next.Version++
		return &Session{rec: next}, nil
	case errors.Is(err, store.ErrConflict):
		return &Session{rec: rec}, nil
	case errors.Is(err, store.ErrNotFound):
		// Gone between the read and the write: it authenticates nothing.
		return nil, ErrInvalidToken
	default:
		return nil, storeErr(err)
	}
}

// Get returns the live session with the given ID, or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	rec, err := m.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Session{rec: rec}, nil
}

func (m *Manager) get(ctx context.Context, id string) (*store.Record, error) {
	sid, err := store.ParseID(id)
	if err != nil {
		return nil, ErrNotFound
	}
	rec, err := m.cfg.Store.Get(ctx, sid)
	if err != nil {
		return nil, storeErr(err)
	}
	if !rec.Live(m.cfg.Now()) {
		return nil, ErrNotFound
	}
	return rec, nil
}

// List returns the subject's live sessions, most recently seen first.
func (m *Manager) List(ctx context.Context, subject string) ([]*Session, error) {
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	recs, err := m.cfg.Store.List(ctx, subject, m.cfg.Now())
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]*Session, len(recs))
	for i, r := range recs {
		out[i] = &Session{rec: r}
	}
	return out, nil
}

// Revoke ends the session with the given ID at once, on every replica
// sharing the store. reason is recorded and reported (e.g. "logout",
// "admin"). Revoking a session that is already gone is not an error.
func (m *Manager) Revoke(ctx context.Context, id, reason string) error {
	sid, err := store.ParseID(id)
	if err != nil {
		return nil // names no session, so there is nothing to revoke
	}
	return m.revoke(ctx, sid, reason)
}

func (m *Manager) revoke(ctx context.Context, id store.ID, reason string) error {
	rec, err := m.cfg.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeErr(err)
	}
	if rec.Revoked() {
		return nil
	}
	if err := m.cfg.Store.Revoke(ctx, id, reason, m.cfg.Now().UTC()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	m.emitFor(ctx, EventRevoked, rec, reason)
	return nil
}

// RevokeToken revokes the session a session token names, if the token is
// valid (its secret matches). It is what logout does.
func (m *Manager) RevokeToken(ctx context.Context, sessionToken, reason string) error {
	return m.revokeByToken(ctx, sessionToken, reason)
}

func (m *Manager) revokeByToken(ctx context.Context, tok, reason string) error {
	id, secret, err := token.Parse(token.Session, tok)
	if err != nil {
		return nil // a malformed token names no session
	}
	rec, err := m.cfg.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return storeErr(err)
	}
	// Only the token's holder may end the session: a forged token with a
	// known ID must not revoke someone else's session.
	if !token.Equal(token.Hash(token.Session, secret), rec.VerifierHash) || rec.Revoked() {
		return nil
	}
	if err := m.cfg.Store.Revoke(ctx, id, reason, m.cfg.Now().UTC()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeErr(err)
	}
	m.emitFor(ctx, EventRevoked, rec, reason)
	return nil
}

// RevokeSubject revokes every live session of subject except the one with
// ID except (empty: none), and returns how many it revoked. It is "sign out
// everywhere (else)".
func (m *Manager) RevokeSubject(ctx context.Context, subject, except string) (int, error) {
	if err := checkSubject(subject); err != nil {
		return 0, err
	}
	var keep store.ID
	if except != "" {
		var err error
		if keep, err = store.ParseID(except); err != nil {
			return 0, badInput("except", "not a session ID")
		}
	}
	ids, err := m.cfg.Store.RevokeSubject(ctx, subject, keep, store.ReasonRevokeAll, m.cfg.Now().UTC())
	if err != nil {
		return 0, storeErr(err)
	}
	for _, id := range ids {
		m.Emit(ctx, Event{Type: EventRevoked, SessionID: id.String(), Subject: subject, Reason: store.ReasonRevokeAll})
	}
	return len(ids), nil
}

// Renewal describes a renewal.
type Renewal struct {
	// Claims, if not nil, replace the session's access-token claims (a
	// privilege change, e.g. a new role).
	Claims json.RawMessage
	// AuthTime, if not zero, records that the user re-authenticated then
	// (step-up). It must not be before the session was created (a
	// re-authentication within it cannot predate it) nor later than now
	// plus AuthTimeLeeway; a time within the leeway is recorded as now, so
	// a session never claims an authentication from the future.
	AuthTime time.Time
	// ACR and AMR say how the user re-authenticated. A renewal that
	// records an authentication (AuthTime, ACR or AMR set; AuthTime
	// defaults to now) replaces all three: the old ACR and AMR described
	// the old authentication. A renewal with none of them keeps them.
	// The DPoP binding (JKT) is kept either way: it is for the session's
	// life.
	ACR string
	AMR []string
}

// reauth reports whether r records a new authentication.
func (r *Renewal) reauth() bool { return !r.AuthTime.IsZero() || r.ACR != "" || len(r.AMR) > 0 }

// AuthTimeLeeway is the clock-skew allowance for a Renewal's AuthTime: the
// app that authenticated the user may run on a machine whose clock is a
// little ahead of latch's.
const AuthTimeLeeway = 30 * time.Second

// Renew gives the session fresh secrets after a privilege change: a new
// session token, CSRF secret and refresh-token family under the same ID,
// data kept. Every token issued before stops working at once.
func (m *Manager) Renew(ctx context.Context, id string, r Renewal) (*Issued, error) {
	var claims []byte
	if r.Claims != nil {
		var err error
		if claims, err = checkClaims(r.Claims); err != nil {
			return nil, err
		}
	}
	if err := CheckAuthContext(r.ACR, r.AMR); err != nil {
		return nil, err
	}
	for {
		cur, err := m.get(ctx, id)
		if err != nil {
			return nil, err
		}
		now := m.cfg.Now().UTC()
		rec := cur.Clone()
		session, refresh, err := m.newSecrets(rec)
		if err != nil {
			return nil, err
		}
		if r.Claims != nil {
			rec.Claims = claims
		}
		if r.reauth() {
			at := now
			if !r.AuthTime.IsZero() {
				if r.AuthTime.Before(rec.CreatedAt) {
					return nil, badInput("auth_time", "is before the session was created")
				}
				if at, err = checkAuthTime(r.AuthTime, now); err != nil {
					return nil, err
				}
			}
			rec.AuthTime, rec.ACR, rec.AMR = at, r.ACR, slices.Clone(r.AMR)
			if len(rec.AMR) == 0 {
				rec.AMR = nil
			}
		}
		rec.LastSeenAt = now
		rec.IdleExpiresAt = now.Add(m.cfg.IdleTimeout)
		switch err := m.cfg.Store.Update(ctx, rec); {
		case errors.Is(err, store.ErrConflict):
			continue // a concurrent write (a touch, most likely): renew the newer state
		case err != nil:
			return nil, storeErr(err)
		}
		rec.Version++
		m.emitFor(ctx, EventRenewed, rec, "")
		return m.issue(ctx, rec, session, refresh, now, "")
	}
}

// maxUpdateRetries bounds UpdateData's compare-and-swap loop.
const maxUpdateRetries = 16

// UpdateData replaces the session's data with fn(current data), atomically:
// if a concurrent write wins, fn is called again on the newer data. fn must
// be a pure function of its input. If ifVersion is not zero, the update is
// made only while the session's version equals it (ErrConflict otherwise).
func (m *Manager) UpdateData(ctx context.Context, id string, ifVersion uint64, fn func(data json.RawMessage) (json.RawMessage, error)) (*Session, error) {
	for range maxUpdateRetries {
		cur, err := m.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if ifVersion != 0 && cur.Version != ifVersion {
			return nil, ErrConflict
		}
		data, err := fn(bytes.Clone(cur.Data))
		if err != nil {
			return nil, err
		}
		if data, err = m.checkData(data); err != nil {
			return nil, err
		}
		rec := cur.Clone()
		rec.Data = data
		switch err := m.cfg.Store.Update(ctx, rec); {
		case errors.Is(err, store.ErrConflict):
			if ifVersion != 0 {
				return nil, ErrConflict
			}
			continue
		case err != nil:
			return nil, storeErr(err)
		}
		rec.Version++
		return &Session{rec: rec}, nil
	}
	return nil, ErrConflict
}

// Sweep deletes expired sessions if the store needs sweeping (it implements
// store.Sweeper); stores with native expiry need none. It returns how many
// records it deleted.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	s, ok := m.cfg.Store.(store.Sweeper)
	if !ok {
		return 0, nil
	}
	n, err := s.Sweep(ctx, m.cfg.Now())
	return n, storeErr(err)
}

// RunSweeper calls Sweep every interval until ctx is done. Run it in its own
// goroutine when the store implements store.Sweeper.
func (m *Manager) RunSweeper(ctx context.Context, every time.Duration) {
	if _, ok := m.cfg.Store.(store.Sweeper); !ok {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sweep(ctx) // errors are retried on the next tick
		}
	}
}

func checkSubject(s string) error {
	if len(s) == 0 || len(s) > store.MaxSubjectLen {
		return badInput("subject", "must be 1 to 256 bytes")
	}
	if !utf8.ValidString(s) {
		return badInput("subject", "must be UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return badInput("subject", "must not contain control characters")
		}
	}
	return nil
}

// checkData validates application data and returns its compact form.
func (m *Manager) checkData(d json.RawMessage) ([]byte, error) {
	if isNull(d) {
		return nil, nil
	}
	if len(d) > 4*m.cfg.MaxDataSize {
		return nil, badInput("data", "too large")
	}
	obj, err := compactObject(d)
	if err != nil {
		return nil, badInput("data", err.Error())
	}
	if len(obj) > m.cfg.MaxDataSize {
		return nil, badInput("data", "larger than the data size limit")
	}
	return obj, nil
}

func checkClaims(c json.RawMessage) ([]byte, error) {
	if isNull(c) {
		return nil, nil
	}
	obj, err := compactObject(c)
	if err != nil {
		return nil, badInput("claims", err.Error())
	}
	if err := accesstoken.CheckExtraClaims(obj); err != nil {
		return nil, badInput("claims", err.Error())
	}
	return obj, nil
}

func isNull(d json.RawMessage) bool {
	t := bytes.TrimSpace(d)
	return len(t) == 0 || string(t) == "null"
}

func compactObject(d json.RawMessage) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, d); err != nil {
		return nil, errors.New("not valid JSON")
	}
	if b.Len() == 0 || b.Bytes()[0] != '{' {
		return nil, errors.New("must be a JSON object")
	}
	if b.Len() == 2 {
		return nil, nil
	}
	return b.Bytes(), nil
}

func checkClient(c Client) (Client, error) {
	if c.IP != "" {
		a, err := netip.ParseAddr(c.IP)
		if err != nil {
			return c, badInput("ip", "not an IP address")
		}
		c.IP = a.Unmap().String()
	}
	if len(c.UserAgent) > maxUserAgent {
		c.UserAgent = c.UserAgent[:maxUserAgent]
	}
	c.UserAgent = strings.ToValidUTF8(c.UserAgent, "\uFFFD")
	return c, nil
}
