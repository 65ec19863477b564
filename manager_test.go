package latch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// recorder collects events and everything the slog sink writes.
type recorder struct {
	mu     sync.Mutex
	events []latch.Event
	log    bytes.Buffer
	slog   latch.Observer
}

func newRecorder() *recorder {
	r := &recorder{}
	r.slog = latch.SlogObserver(slog.New(slog.NewJSONHandler(lockedWriter{r}, nil)))
	return r
}

type lockedWriter struct{ r *recorder }

func (w lockedWriter) Write(p []byte) (int, error) { return w.r.log.Write(p) }

func (r *recorder) Observe(ctx context.Context, e latch.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.slog.Observe(ctx, e)
}

func (r *recorder) count(t latch.EventType, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == t && (reason == "" || e.Reason == reason) {
			n++
		}
	}
	return n
}

// claimsIssuer is a deterministic stand-in for an access-token signer that
// renders the claims it is given, so tests can compare them.
type claimsIssuer struct{}

func (claimsIssuer) Issue(_ context.Context, c accesstoken.Claims) (string, error) {
	return fmt.Sprintf("at:%s|%s|%s|%d|%d|%s", c.Subject, c.SessionID, c.ID, c.IssuedAt.Unix(), c.ExpiresAt.Unix(), c.Extra), nil
}

type env struct {
	m     *latch.Manager
	clock *testutil.Clock
	rec   *recorder
	store store.Store
}

func newEnv(t *testing.T, mut ...func(*latch.Config)) *env {
	t.Helper()
	e := &env{clock: newClock(), rec: newRecorder(), store: memstore.New()}
	cfg := latch.Config{
		Store:        e.store,
		Now:          e.clock.Now,
		Observer:     e.rec,
		AccessTokens: claimsIssuer{},
	}
	for _, f := range mut {
		f(&cfg)
	}
	m, err := latch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

func (e *env) create(t *testing.T, subject string) *latch.Issued {
	t.Helper()
	is, err := e.m.Create(context.Background(), latch.NewSession{Subject: subject, Data: json.RawMessage(`{"n":0,"name":"Ann"}`)})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return is
}

var ctx = context.Background()

func TestCreateValidate(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	if !strings.HasPrefix(is.SessionToken.Reveal(), "lts_") || !strings.HasPrefix(is.RefreshToken.Reveal(), "ltr_") {
		t.Fatalf("token prefixes wrong")
	}
	if !strings.HasPrefix(is.Session.ID(), "ses_") {
		t.Fatalf("ID %q lacks ses_ prefix", is.Session.ID())
	}
	s, err := e.m.Validate(ctx, is.SessionToken.Reveal())
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if s.Subject() != "alice" || s.ID() != is.Session.ID() {
		t.Fatalf("got %s/%s", s.Subject(), s.ID())
	}
	if v, ok := s.StringValue("name"); !ok || v != "Ann" {
		t.Fatalf("StringValue(name) = %q, %v", v, ok)
	}
	if e.rec.count(latch.EventCreated, "") != 1 {
		t.Fatalf("no created event")
	}
}

func TestTokenKindsNeverConfused(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	if _, err := e.m.Validate(ctx, is.RefreshToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Errorf("refresh token accepted as session token: %v", err)
	}
	if _, err := e.m.Refresh(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Errorf("session token accepted as refresh token: %v", err)
	}
	// Relabelling the prefix must fail the checksum.
	relabelled := "lts_" + strings.TrimPrefix(is.RefreshToken.Reveal(), "ltr_")
	if _, err := e.m.Validate(ctx, relabelled); !errors.Is(err, latch.ErrInvalidToken) {
		t.Errorf("relabelled refresh token accepted: %v", err)
	}
	if _, err := e.m.Validate(ctx, is.AccessToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Errorf("access token accepted as session token: %v", err)
	}
}

func TestValidateRejectsForgedAndMangledTokens(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	tok := is.SessionToken.Reveal()
	flip := func(i int) string {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"prefix only":    "lts_",
		"truncated":      tok[:len(tok)-1],
		"extended":       tok + "A",
		"flipped id":     flip(6),
		"flipped secret": flip(40),
		"flipped sum":    flip(len(tok) - 2),
		"padding":        tok[:len(tok)-1] + "=",
		"std alphabet":   strings.ReplaceAll(strings.ReplaceAll(tok, "-", "+"), "_", "/") + "+",
		"upper prefix":   "LTS_" + tok[4:],
	} {
		if _, err := e.m.Validate(ctx, bad); !errors.Is(err, latch.ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestCreateRevokesReplacedToken(t *testing.T) {
	e := newEnv(t)
	planted := e.create(t, "mallory") // an attacker's session planted in the victim's browser
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", Replace: planted.SessionToken.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(ctx, planted.SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("pre-login token still valid after login: %v", err)
	}
	if is.Session.ID() == planted.Session.ID() {
		t.Fatal("login adopted the pre-login session ID")
	}
	if e.rec.count(latch.EventRevoked, store.ReasonReplaced) != 1 {
		t.Fatal("no revoked(replaced) event")
	}
}

func TestReplaceWithForgedTokenRevokesNothing(t *testing.T) {
	e := newEnv(t)
	victim := e.create(t, "alice")
	// A forged token naming the victim's (public) session ID with a random
	// secret and a valid checksum must not end the victim's session.
	other := e.create(t, "bob")
	forged := forgeWithID(t, victim.SessionToken.Reveal(), other.SessionToken.Reveal())
	if _, err := e.m.Create(ctx, latch.NewSession{Subject: "eve", Replace: forged}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(ctx, victim.SessionToken.Reveal()); err != nil {
		t.Fatalf("victim's session was revoked by a forged Replace token: %v", err)
	}
	if err := e.m.RevokeToken(ctx, forged, store.ReasonLogout); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(ctx, victim.SessionToken.Reveal()); err != nil {
		t.Fatalf("victim's session was revoked by a forged logout token: %v", err)
	}
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) {
		c.IdleTimeout = 10 * time.Minute
		c.AbsoluteTimeout = time.Hour
		c.TouchInterval = time.Minute
	})
	is := e.create(t, "alice")
	tok := is.SessionToken.Reveal()

	// Activity every 9 minutes keeps the session alive past the idle timeout...
	for i := 0; i < 6; i++ {
		e.clock.Advance(9 * time.Minute)
		if _, err := e.m.Validate(ctx, tok); err != nil {
			t.Fatalf("after %d active periods: %v", i+1, err)
		}
	}
	// ...but not past the absolute deadline.
	e.clock.Advance(7 * time.Minute) // 61 minutes in
	_, err := e.m.Validate(ctx, tok)
	if !errors.Is(err, latch.ErrAbsoluteTimeout) || !errors.Is(err, latch.ErrExpired) || errors.Is(err, latch.ErrIdleTimeout) {
		t.Fatalf("after absolute deadline: %v", err)
	}

	is = e.create(t, "bob")
	e.clock.Advance(10 * time.Minute)
	_, err = e.m.Validate(ctx, is.SessionToken.Reveal())
	if !errors.Is(err, latch.ErrIdleTimeout) || !errors.Is(err, latch.ErrExpired) || errors.Is(err, latch.ErrAbsoluteTimeout) {
		t.Fatalf("after idle timeout: %v", err)
	}
	if e.rec.count(latch.EventExpired, "idle-timeout") != 1 || e.rec.count(latch.EventExpired, "absolute-timeout") != 1 {
		t.Fatal("expired events missing")
	}
}

func TestTouchWritesAtMostOncePerInterval(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.TouchInterval = time.Minute })
	is := e.create(t, "alice")
	version := func() uint64 {
		s, err := e.m.Get(ctx, is.Session.ID())
		if err != nil {
			t.Fatal(err)
		}
		return s.Version()
	}
	v0 := version()
	for i := 0; i < 10; i++ {
		e.clock.Advance(5 * time.Second)
		if _, err := e.m.Validate(ctx, is.SessionToken.Reveal()); err != nil {
			t.Fatal(err)
		}
	}
	if v := version(); v != v0 {
		t.Fatalf("50s of requests wrote the session %d times; want 0", v-v0)
	}
	e.clock.Advance(15 * time.Second)
	s, err := e.m.ValidateClient(ctx, is.SessionToken.Reveal(), latch.Client{IP: "192.0.2.7", UserAgent: "test/1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := version(); v != v0+1 {
		t.Fatalf("after the touch interval: version %d, want %d", v, v0+1)
	}
	if s.IP() != "192.0.2.7" || !s.LastSeenAt().Equal(e.clock.Now()) || !s.IdleExpiresAt().Equal(e.clock.Now().Add(latch.DefaultIdleTimeout)) {
		t.Fatalf("touch did not record activity: ip=%s last=%v idle=%v", s.IP(), s.LastSeenAt(), s.IdleExpiresAt())
	}
}

func TestRenewKillsOldTokens(t *testing.T) {
	e := newEnv(t)
	old := e.create(t, "alice")
	e.clock.Advance(time.Minute)
	step := e.clock.Now()
	is, err := e.m.Renew(ctx, old.Session.ID(), latch.Renewal{Claims: json.RawMessage(`{"role":"admin"}`), AuthTime: step})
	if err != nil {
		t.Fatal(err)
	}
	if is.Session.ID() != old.Session.ID() {
		t.Fatal("renew changed the session ID")
	}
	if _, err := e.m.Validate(ctx, old.SessionToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("old session token after renew: %v", err)
	}
	if _, err := e.m.Refresh(ctx, old.RefreshToken.Reveal()); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("old refresh token after renew: %v (must be invalid, not theft)", err)
	}
	s, err := e.m.Validate(ctx, is.SessionToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Data()) != `{"n":0,"name":"Ann"}` || string(s.Claims()) != `{"role":"admin"}` || !s.AuthTime().Equal(step) {
		t.Fatalf("renew lost state: data=%s claims=%s auth=%v", s.Data(), s.Claims(), s.AuthTime())
	}
	if _, err := e.m.Refresh(ctx, is.RefreshToken.Reveal()); err != nil {
		t.Fatalf("new refresh token: %v", err)
	}
	if !strings.Contains(is.AccessToken.Reveal(), `{"role":"admin"}`) {
		t.Fatalf("renewed access token lacks the new claims")
	}
}

func TestUpdateDataNoLostUpdates(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	const writers = 50
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.m.UpdateData(ctx, is.Session.ID(), 0, func(d json.RawMessage) (json.RawMessage, error) {
				var v map[string]any
				if err := json.Unmarshal(d, &v); err != nil {
					return nil, err
				}
				v["n"] = v["n"].(float64) + 1
				return json.Marshal(v)
			})
			if err != nil && !errors.Is(err, latch.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, err := e.m.Get(ctx, is.Session.ID())
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N int }
	json.Unmarshal(s.Data(), &v)
	// Every writer either landed or was told it conflicted; with 16 retries
	// each, all 50 land in practice, and none is ever silently lost.
	if uint64(v.N) != s.Version()-1 {
		t.Fatalf("n=%d after %d writes: an update was lost", v.N, s.Version()-1)
	}
	if v.N == 0 {
		t.Fatal("no update landed")
	}
}

func TestUpdateDataIfVersion(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	set := func(ver uint64, data string) error {
		_, err := e.m.UpdateData(ctx, is.Session.ID(), ver, func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(data), nil })
		return err
	}
	if err := set(is.Session.Version(), `{"a":1}`); err != nil {
		t.Fatal(err)
	}
	if err := set(is.Session.Version(), `{"a":2}`); !errors.Is(err, latch.ErrConflict) {
		t.Fatalf("stale If-Match: %v", err)
	}
	s, _ := e.m.Get(ctx, is.Session.ID())
	if string(s.Data()) != `{"a":1}` {
		t.Fatalf("stale write changed data: %s", s.Data())
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.MaxDataSize = 64 })
	for name, p := range map[string]latch.NewSession{
		"empty subject":    {Subject: ""},
		"long subject":     {Subject: strings.Repeat("x", 257)},
		"control subject":  {Subject: "al\nice"},
		"invalid utf8":     {Subject: "\xff"},
		"data not object":  {Subject: "a", Data: json.RawMessage(`[1,2]`)},
		"data not json":    {Subject: "a", Data: json.RawMessage(`{"a":`)},
		"data too large":   {Subject: "a", Data: json.RawMessage(`{"a":"` + strings.Repeat("x", 100) + `"}`)},
		"claims not json":  {Subject: "a", Claims: json.RawMessage(`nope`)},
		"ip not an ip":     {Subject: "a", Client: latch.Client{IP: "example.com"}},
		"claims is string": {Subject: "a", Claims: json.RawMessage(`"x"`)},
	} {
		_, err := e.m.Create(ctx, latch.NewSession{Subject: p.Subject, Data: p.Data, Claims: p.Claims, Client: p.Client})
		var ie *latch.InputError
		if !errors.Is(err, latch.ErrBadInput) || !errors.As(err, &ie) {
			t.Errorf("%s: got %v, want an InputError", name, err)
		}
	}
	if n := e.rec.count(latch.EventCreated, ""); n != 0 {
		t.Fatalf("bad input created %d sessions", n)
	}
	if _, err := e.m.List(ctx, ""); !errors.Is(err, latch.ErrBadInput) {
		t.Fatalf("List(\"\"): %v", err)
	}
}

func TestRevokeAndRevokeSubject(t *testing.T) {
	e := newEnv(t)
	a1, a2, a3 := e.create(t, "alice"), e.create(t, "alice"), e.create(t, "alice")
	b := e.create(t, "bob")
	if err := e.m.Revoke(ctx, a1.Session.ID(), store.ReasonLogout); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(ctx, a1.SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("revoked session: %v", err)
	}
	if err := e.m.Revoke(ctx, a1.Session.ID(), store.ReasonLogout); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if err := e.m.Revoke(ctx, "ses_nonsense", store.ReasonLogout); err != nil {
		t.Fatalf("revoke of malformed ID: %v", err)
	}
	n, err := e.m.RevokeSubject(ctx, "alice", a3.Session.ID())
	if err != nil || n != 1 {
		t.Fatalf("RevokeSubject = %d, %v; want 1", n, err)
	}
	if _, err := e.m.Validate(ctx, a2.SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("a2 after revoke-all: %v", err)
	}
	if _, err := e.m.Refresh(ctx, a2.RefreshToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("a2 refresh after revoke-all: %v", err)
	}
	for _, keep := range []*latch.Issued{a3, b} {
		if _, err := e.m.Validate(ctx, keep.SessionToken.Reveal()); err != nil {
			t.Fatalf("%s revoked by revoke-all of alice except a3: %v", keep.Session.Subject(), err)
		}
	}
	list, err := e.m.List(ctx, "alice")
	if err != nil || len(list) != 1 || list[0].ID() != a3.Session.ID() {
		t.Fatalf("List after revoke-all: %d sessions, %v", len(list), err)
	}
}

func TestMaxPerSubjectEvictsLeastRecentlySeen(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.MaxPerSubject = 3 })
	var all []*latch.Issued
	for range 3 {
		all = append(all, e.create(t, "alice"))
		e.clock.Advance(2 * time.Minute)
	}
	// Use the oldest, so the second becomes least recently seen.
	if _, err := e.m.Validate(ctx, all[0].SessionToken.Reveal()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.create(t, "alice")
	if _, err := e.m.Validate(ctx, all[1].SessionToken.Reveal()); !errors.Is(err, latch.ErrRevoked) {
		t.Fatalf("least recently seen session not evicted: %v", err)
	}
	if _, err := e.m.Validate(ctx, all[0].SessionToken.Reveal()); err != nil {
		t.Fatalf("recently used session evicted: %v", err)
	}
	if e.rec.count(latch.EventRevoked, store.ReasonEvicted) != 1 {
		t.Fatal("no eviction event")
	}
}

func TestListMostRecentFirst(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.create(t, "alice"), e.create(t, "alice"), e.create(t, "alice")
	e.clock.Advance(2 * time.Minute)
	e.m.Validate(ctx, b.SessionToken.Reveal())
	e.clock.Advance(2 * time.Minute)
	e.m.Validate(ctx, a.SessionToken.Reveal())
	list, err := e.m.List(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		got = append(got, s.ID())
	}
	want := []string{a.Session.ID(), b.Session.ID(), c.Session.ID()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// failing wraps a store and fails every call, as a store that lost its
// backend would.
type failing struct{ store.Store }

var errDown = fmt.Errorf("%w: connection refused", store.ErrUnavailable)

func (failing) Get(context.Context, store.ID) (*store.Record, error) { return nil, errDown }
func (failing) Update(context.Context, *store.Record) error          { return errDown }
func (failing) Create(context.Context, *store.Record, int) ([]store.ID, error) {
	return nil, errDown
}
func (failing) RotateRefresh(context.Context, store.Rotation) (*store.Record, error) {
	return nil, errDown
}

// touchFails fails writes: reads succeed.
type touchFails struct{ store.Store }

func (touchFails) Update(context.Context, *store.Record) error { return errDown }
func (touchFails) RotateRefresh(context.Context, store.Rotation) (*store.Record, error) {
	return nil, errDown
}

func TestStoreFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	for name, s := range map[string]store.Store{"down": failing{e.store}, "writes fail": touchFails{e.store}} {
		m, err := latch.New(latch.Config{Store: s, Now: e.clock.Now, Observer: e.rec})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Minute) // force a touch
		sess, err := m.Validate(ctx, is.SessionToken.Reveal())
		if sess != nil || !errors.Is(err, latch.ErrUnavailable) {
			t.Errorf("%s: Validate = %v, %v; want nil, ErrUnavailable", name, sess, err)
		}
		r, err := m.Refresh(ctx, is.RefreshToken.Reveal())
		if r != nil || err == nil {
			t.Errorf("%s: Refresh succeeded on a failing store", name)
		}
	}
}

func TestNoSecretInEventsOrErrors(t *testing.T) {
	e := newEnv(t)
	var secrets []string
	var errs []error
	keep := func(is *latch.Issued) {
		secrets = append(secrets, is.SessionToken.Reveal(), is.RefreshToken.Reveal(), is.AccessToken.Reveal())
	}
	a := e.create(t, "alice")
	keep(a)
	r, err := e.m.Refresh(ctx, a.RefreshToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, r.RefreshToken.Reveal())
	e.clock.Advance(time.Minute)
	_, err = e.m.Refresh(ctx, a.RefreshToken.Reveal()) // reuse
	errs = append(errs, err)
	b := e.create(t, "bob")
	keep(b)
	_, err = e.m.Validate(ctx, b.SessionToken.Reveal()[:40])
	errs = append(errs, err)
	_, err = e.m.Validate(ctx, b.SessionToken.Reveal()+"x")
	errs = append(errs, err)
	e.clock.Advance(2 * time.Hour)
	_, err = e.m.Validate(ctx, b.SessionToken.Reveal())
	errs = append(errs, err)
	e.m.RevokeToken(ctx, b.SessionToken.Reveal(), store.ReasonLogout)

	out := e.rec.log.String() + fmt.Sprint(errs) + fmt.Sprintf("%v %+v %#v %s %q %x %d", a, a, a.SessionToken, b.RefreshToken, b.SessionToken, b.SessionToken, b.SessionToken)
	if !strings.Contains(out, "session.refresh_reuse_detected") {
		t.Fatalf("log lacks the reuse event: %s", out)
	}
	for _, s := range secrets {
		for _, frag := range []string{s, s[4:40], s[len(s)-30:]} {
			if strings.Contains(out, frag) {
				t.Fatalf("a token (or a fragment) appears in logs, errors or formatting")
			}
		}
	}
}

func TestTokenRedaction(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	raw := is.SessionToken.Reveal()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "tok", is.SessionToken, "all", is)
	for _, s := range []string{fmt.Sprint(is.SessionToken), fmt.Sprintf("%#v", is.SessionToken), fmt.Sprintf("%x", is.SessionToken), fmt.Sprintf("%+v", *is), buf.String()} {
		if strings.Contains(s, raw[4:]) {
			t.Fatalf("token revealed by formatting: %s", s)
		}
	}
	if fmt.Sprint(is.SessionToken) != "lts_[REDACTED]" {
		t.Fatalf("String() = %q", fmt.Sprint(is.SessionToken))
	}
}

func TestCSRFTokens(t *testing.T) {
	e := newEnv(t)
	a, b := e.create(t, "alice"), e.create(t, "alice")
	t1, err := e.m.CSRFToken(a.Session)
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := e.m.CSRFToken(a.Session)
	if t1 == t2 {
		t.Fatal("CSRF tokens are not masked per call")
	}
	if !e.m.CheckCSRF(a.Session, t1) || !e.m.CheckCSRF(a.Session, t2) {
		t.Fatal("own CSRF token rejected")
	}
	tb, _ := e.m.CSRFToken(b.Session)
	flipped := []byte(t1)
	flipped[len(flipped)-3] ^= 1
	for name, bad := range map[string]string{"other session": tb, "empty": "", "flipped": string(flipped), "truncated": t1[:20], "session token": a.SessionToken.Reveal()} {
		if e.m.CheckCSRF(a.Session, bad) {
			t.Errorf("%s: accepted", name)
		}
	}
	// Renewal replaces the CSRF secret.
	re, err := e.m.Renew(ctx, a.Session.ID(), latch.Renewal{})
	if err != nil {
		t.Fatal(err)
	}
	if e.m.CheckCSRF(re.Session, t1) {
		t.Fatal("CSRF token survived renewal")
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	for name, cfg := range map[string]latch.Config{
		"no store":      {},
		"negative idle": {Store: memstore.New(), IdleTimeout: -1},
		"touch >= idle": {Store: memstore.New(), IdleTimeout: time.Minute, TouchInterval: time.Minute},
		"huge data":     {Store: memstore.New(), MaxDataSize: 1 << 30},
	} {
		if _, err := latch.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// forgeWithID returns a session token that names victim's session ID with
// another token's secret, and a valid checksum: what an attacker who knows a
// public session ID can build.
func forgeWithID(t *testing.T, victim, donor string) string {
	t.Helper()
	return forge(victim, donor)
}

func TestPeekRecordsNoActivity(t *testing.T) {
	e := newEnv(t, func(c *latch.Config) { c.IdleTimeout = 10 * time.Minute })
	is := e.create(t, "alice")
	for range 4 {
		e.clock.Advance(3 * time.Minute)
		if _, err := e.m.Peek(ctx, is.SessionToken.Reveal()); err != nil && !errors.Is(err, latch.ErrIdleTimeout) {
			t.Fatal(err)
		}
	}
	// 12 minutes of polling did not keep the session alive.
	if _, err := e.m.Peek(ctx, is.SessionToken.Reveal()); !errors.Is(err, latch.ErrIdleTimeout) {
		t.Fatalf("Peek kept the session alive: %v", err)
	}
	if _, err := e.m.Peek(ctx, forge(is.SessionToken.Reveal(), e.create(t, "bob").SessionToken.Reveal())); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("Peek accepted a forged token: %v", err)
	}
}

// vanishing loses every record between a read and the next write, as a
// store whose sweeper ran in between would.
type vanishing struct{ store.Store }

func (vanishing) Update(context.Context, *store.Record) error { return store.ErrNotFound }

func TestTouchOfVanishedRecordAuthenticatesNothing(t *testing.T) {
	e := newEnv(t)
	is := e.create(t, "alice")
	m, err := latch.New(latch.Config{Store: vanishing{e.store}, Now: e.clock.Now, Observer: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute) // force a touch
	if s, err := m.Validate(ctx, is.SessionToken.Reveal()); s != nil || !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("Validate = %v, %v; want nil, ErrInvalidToken", s, err)
	}
}
