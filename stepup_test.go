package latch_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store"
)

// capturingIssuer keeps the claims of every access token it issues.
type capturingIssuer struct {
	mu   sync.Mutex
	last accesstoken.Claims
}

func (c *capturingIssuer) Issue(_ context.Context, cl accesstoken.Claims) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = cl
	return "at", nil
}

func TestCreateRecordsAuthContext(t *testing.T) {
	iss := &capturingIssuer{}
	e := newEnv(t, func(c *latch.Config) { c.AccessTokens = iss })
	authAt := e.clock.Now().Add(-time.Minute)
	amr := []string{"pwd", "otp"}
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", AuthTime: authAt, ACR: "urn:latch:mfa", AMR: amr})
	if err != nil {
		t.Fatal(err)
	}
	amr[0] = "changed" // the manager keeps its own copy
	s, err := e.m.Validate(ctx, is.SessionToken.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if !s.AuthTime().Equal(authAt) || s.ACR() != "urn:latch:mfa" || !slices.Equal(s.AMR(), []string{"pwd", "otp"}) {
		t.Fatalf("session auth context: %v %q %q", s.AuthTime(), s.ACR(), s.AMR())
	}
	// RFC 9068 §2.2.1: the access token carries auth_time, acr and amr.
	if c := iss.last; !c.AuthTime.Equal(authAt) || c.ACR != "urn:latch:mfa" || !slices.Equal(c.AMR, []string{"pwd", "otp"}) {
		t.Fatalf("access token claims: %v %q %q", c.AuthTime, c.ACR, c.AMR)
	}

	// Without them: AuthTime is now, no ACR or AMR, none in the token.
	is, err = e.m.Create(ctx, latch.NewSession{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if s := is.Session; !s.AuthTime().Equal(e.clock.Now()) || s.ACR() != "" || s.AMR() != nil {
		t.Fatalf("default auth context: %v %q %q", s.AuthTime(), s.ACR(), s.AMR())
	}
	if c := iss.last; c.ACR != "" || c.AMR != nil {
		t.Fatalf("access token of a session without ACR/AMR: %q %q", c.ACR, c.AMR)
	}
}

func TestCreateRefusesBadAuthContext(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	for name, c := range map[string]struct {
		p     latch.NewSession
		field string
	}{
		"future auth_time":     {latch.NewSession{AuthTime: now.Add(latch.AuthTimeLeeway + time.Second)}, "auth_time"},
		"long acr":             {latch.NewSession{ACR: strings.Repeat("a", store.MaxACRLen+1)}, "acr"},
		"acr with a space":     {latch.NewSession{ACR: "urn:a b"}, "acr"},
		"acr with a quote":     {latch.NewSession{ACR: `a"b`}, "acr"},
		"too many amr":         {latch.NewSession{AMR: slices.Repeat([]string{"pwd"}, store.MaxAMRValues+1)}, "amr"},
		"empty amr value":      {latch.NewSession{AMR: []string{""}}, "amr"},
		"long amr value":       {latch.NewSession{AMR: []string{strings.Repeat("m", store.MaxAMRValueLen+1)}}, "amr"},
		"amr with a newline":   {latch.NewSession{AMR: []string{"pwd\r\nX-Injected: 1"}}, "amr"},
		"amr with non-ASCII":   {latch.NewSession{AMR: []string{"pwdü"}}, "amr"},
		"amr with a backslash": {latch.NewSession{AMR: []string{`p\d`}}, "amr"},
	} {
		c.p.Subject = "alice"
		_, err := e.m.Create(ctx, c.p)
		var ie *latch.InputError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s: %v, want an InputError for %s", name, err, c.field)
		}
	}
	if n := len(mustList(t, e, "alice")); n != 0 {
		t.Fatalf("refused creates left %d sessions", n)
	}
	// Within the clock-skew leeway the time is recorded as now.
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", AuthTime: now.Add(latch.AuthTimeLeeway / 2)})
	if err != nil || !is.Session.AuthTime().Equal(now) {
		t.Fatalf("auth_time within the leeway: %v, %v", err, is.Session.AuthTime())
	}
}

func mustList(t *testing.T, e *env, subject string) []*latch.Session {
	t.Helper()
	l, err := e.m.List(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// bind sets the session's DPoP key thumbprint directly in the store, as
// the DPoP binding does at creation.
func bind(t *testing.T, e *env, id string) [32]byte {
	t.Helper()
	sid, _ := store.ParseID(id)
	rec, err := e.store.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	next := rec.Clone()
	next.JKT = [32]byte{1, 2, 3}
	if err := e.store.Update(ctx, next); err != nil {
		t.Fatal(err)
	}
	return next.JKT
}

func jktOf(t *testing.T, e *env, id string) [32]byte {
	t.Helper()
	sid, _ := store.ParseID(id)
	rec, err := e.store.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	return rec.JKT
}

func TestRenewReplacesAuthContextKeepsBinding(t *testing.T) {
	iss := &capturingIssuer{}
	e := newEnv(t, func(c *latch.Config) { c.AccessTokens = iss })
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", ACR: "urn:latch:mfa", AMR: []string{"pwd", "otp"}})
	if err != nil {
		t.Fatal(err)
	}
	id := is.Session.ID()
	jkt := bind(t, e, id)
	created := is.Session.AuthTime()

	// A privilege change without re-authentication keeps all three.
	e.clock.Advance(time.Minute)
	is, err = e.m.Renew(ctx, id, latch.Renewal{})
	if err != nil {
		t.Fatal(err)
	}
	if s := is.Session; !s.AuthTime().Equal(created) || s.ACR() != "urn:latch:mfa" || !slices.Equal(s.AMR(), []string{"pwd", "otp"}) {
		t.Fatalf("renewal without re-authentication changed the auth context: %v %q %q", s.AuthTime(), s.ACR(), s.AMR())
	}

	// A re-authentication with only amr: auth_time is now, the old acr is
	// gone (it described the old authentication).
	e.clock.Advance(time.Minute)
	is, err = e.m.Renew(ctx, id, latch.Renewal{AMR: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := is.Session; !s.AuthTime().Equal(e.clock.Now()) || s.ACR() != "" || !slices.Equal(s.AMR(), []string{"pwd"}) {
		t.Fatalf("re-authenticated renewal: %v %q %q", s.AuthTime(), s.ACR(), s.AMR())
	}
	if c := iss.last; !c.AuthTime.Equal(e.clock.Now()) || c.ACR != "" || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("renewed access token: %v %q %q", c.AuthTime, c.ACR, c.AMR)
	}
	if jktOf(t, e, id) != jkt {
		t.Fatal("renewal dropped the DPoP binding")
	}

	at := e.clock.Now().Add(-10 * time.Second)
	is, err = e.m.Renew(ctx, id, latch.Renewal{AuthTime: at, ACR: "urn:latch:hwk", AMR: []string{"hwk", "pin"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := is.Session; !s.AuthTime().Equal(at) || s.ACR() != "urn:latch:hwk" || !slices.Equal(s.AMR(), []string{"hwk", "pin"}) {
		t.Fatalf("renewal with auth_time, acr, amr: %v %q %q", s.AuthTime(), s.ACR(), s.AMR())
	}
	if jktOf(t, e, id) != jkt {
		t.Fatal("renewal dropped the DPoP binding")
	}

	// Refused renewals change nothing.
	before := is.Session.Version()
	for name, rn := range map[string]latch.Renewal{
		"future":         {AuthTime: e.clock.Now().Add(time.Hour)},
		"before created": {AuthTime: created.Add(-time.Second)},
		"bad amr":        {AMR: []string{"a b"}},
		"bad acr":        {ACR: "ü"},
	} {
		if _, err := e.m.Renew(ctx, id, rn); !errors.Is(err, latch.ErrBadInput) {
			t.Errorf("renew with %s: %v, want ErrBadInput", name, err)
		}
	}
	if s, err := e.m.Get(ctx, id); err != nil || s.Version() != before {
		t.Fatalf("refused renewals wrote the session: %v", err)
	}
}

func TestValidateForStepUp(t *testing.T) {
	e := newEnv(t)
	is, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", ACR: "urn:latch:pwd", AMR: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	tok := is.SessionToken.Reveal()
	recent := latch.AuthRequirement{MaxAge: 5 * time.Minute}
	mfa := latch.AuthRequirement{ACRValues: []string{"urn:latch:mfa", "urn:latch:hwk"}}
	pwdOrMFA := latch.AuthRequirement{ACRValues: []string{"urn:latch:mfa", "urn:latch:pwd"}}

	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, recent); err != nil {
		t.Fatalf("fresh session, max_age 5m: %v", err)
	}
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, pwdOrMFA); err != nil {
		t.Fatalf("acr among acr_values: %v", err)
	}
	var ie *latch.InsufficientAuthError
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, mfa); !errors.As(err, &ie) || !ie.WrongACR || ie.TooOld || !errors.Is(err, latch.ErrInsufficientAuth) {
		t.Fatalf("acr not among acr_values: %v", err)
	}

	// Past max_age, and past the touch interval: the refusal records no
	// activity.
	e.clock.Advance(5*time.Minute + time.Second)
	v0 := mustGet(t, e, is.Session.ID()).Version()
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{IP: "192.0.2.9"}, recent); !errors.As(err, &ie) || !ie.TooOld || ie.WrongACR || ie.Need.MaxAge != 5*time.Minute {
		t.Fatalf("stale session, max_age 5m: %v", err)
	}
	if s := mustGet(t, e, is.Session.ID()); s.Version() != v0 || s.IP() == "192.0.2.9" {
		t.Fatalf("a refused step-up touched the session (version %d, want %d)", s.Version(), v0)
	}
	both := latch.AuthRequirement{MaxAge: time.Minute, ACRValues: []string{"urn:latch:mfa"}}
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, both); !errors.As(err, &ie) || !ie.TooOld || !ie.WrongACR {
		t.Fatalf("both unmet: %v", err)
	}
	// The plain validation still works and touches.
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, latch.AuthRequirement{}); err != nil {
		t.Fatal(err)
	}
	if mustGet(t, e, is.Session.ID()).Version() != v0+1 {
		t.Fatal("the plain validation did not touch")
	}

	// Re-authentication (renew with a new auth_time) meets it again.
	rn, err := e.m.Renew(ctx, is.Session.ID(), latch.Renewal{AuthTime: e.clock.Now(), ACR: "urn:latch:mfa", AMR: []string{"pwd", "otp"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ValidateFor(ctx, rn.SessionToken.Reveal(), latch.Client{}, both); err != nil {
		t.Fatalf("after step-up: %v", err)
	}

	// A requirement that could never match is the caller's bug.
	for _, bad := range []latch.AuthRequirement{{ACRValues: []string{""}}, {ACRValues: []string{"a b"}}, {ACRValues: []string{`"`}}} {
		if _, err := e.m.ValidateFor(ctx, rn.SessionToken.Reveal(), latch.Client{}, bad); !errors.Is(err, latch.ErrBadInput) {
			t.Errorf("ValidateFor(%q): %v, want ErrBadInput", bad.ACRValues, err)
		}
	}
	// Invalid tokens are still invalid, whatever the requirement.
	if _, err := e.m.ValidateFor(ctx, tok, latch.Client{}, recent); !errors.Is(err, latch.ErrInvalidToken) {
		t.Fatalf("the pre-renewal token: %v", err)
	}
}

func mustGet(t *testing.T, e *env, id string) *latch.Session {
	t.Helper()
	s, err := e.m.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateAccessForStepUp(t *testing.T) {
	iss := &capturingIssuer{}
	e := newEnv(t, func(c *latch.Config) { c.AccessTokens = iss })
	if _, err := e.m.Create(ctx, latch.NewSession{Subject: "alice", AMR: []string{"pwd"}}); err != nil {
		t.Fatal(err)
	}
	claims := iss.last
	need := latch.AuthRequirement{MaxAge: time.Minute}
	if _, err := e.m.ValidateAccessFor(ctx, claims, latch.Client{}, need); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	if _, err := e.m.ValidateAccessFor(ctx, claims, latch.Client{}, need); !errors.Is(err, latch.ErrInsufficientAuth) {
		t.Fatalf("stale: %v", err)
	}
}

func TestAuthRequirementCheckAndChallenge(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := latch.AuthRequirement{MaxAge: 300 * time.Second}
	if r.Check(now.Add(-300*time.Second), "", now) != nil {
		t.Error("an authentication exactly max_age old must pass")
	}
	if r.Check(now.Add(-301*time.Second), "", now) == nil {
		t.Error("an authentication older than max_age must fail")
	}
	if r.Check(time.Time{}, "", now) == nil {
		t.Error("an unknown auth time must fail a max_age")
	}
	if (latch.AuthRequirement{ACRValues: []string{"x"}}).Check(now, "", now) == nil {
		t.Error("an empty acr must fail acr_values")
	}
	if !(latch.AuthRequirement{}).IsZero() || r.IsZero() {
		t.Error("IsZero")
	}
	for _, c := range []struct {
		r    latch.AuthRequirement
		want string
	}{
		{r, `Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"`},
		{latch.AuthRequirement{ACRValues: []string{"urn:a", "urn:b"}}, `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:a urn:b"`},
		{latch.AuthRequirement{MaxAge: time.Minute, ACRValues: []string{"mfa"}}, `Bearer error="insufficient_user_authentication", error_description="A more recent authentication of another level is required", max_age="60", acr_values="mfa"`},
	} {
		if got := c.r.Challenge(); got != c.want {
			t.Errorf("Challenge:\n got %s\nwant %s", got, c.want)
		}
	}
}
