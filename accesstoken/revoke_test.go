package accesstoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// versionedStore is a fakeKeyStore that also reports its version alone,
// counting the calls, as the Redis and bbolt stores do.
type versionedStore struct {
	fakeKeyStore
	versionCalls int
}

func (s *versionedStore) KeyringVersion(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versionCalls++
	if s.loadErr != nil {
		return 0, s.loadErr
	}
	return s.version, nil
}

func issueWith(t *testing.T, kr *Keyring, clk *clock, sub string) string {
	t.Helper()
	iss, _ := NewIssuer(IssuerConfig{Keys: kr, Issuer: testIss, Audience: testAud, Now: clk.Now})
	tok, err := iss.Issue(context.Background(), Claims{Subject: sub, SessionID: "ses_" + sub})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, _ := strict.DecodeString(h)
	var hdr struct{ Kid string }
	json.Unmarshal(b, &hdr)
	return hdr.Kid
}

// Revoking the signing key: it leaves JWKS, its tokens are refused at
// once by this replica and by another one in online mode (cached or not),
// and a fresh key signs at once, on both replicas.
func TestRevokeSigningKey(t *testing.T) {
	ctx := context.Background()
	st := &versionedStore{}
	clk := newClock(t0)
	a := openRing(t, st, clk, EdDSA)
	b := openRing(t, st, clk, EdDSA)
	online := func(context.Context, Claims) error { return nil }
	va, _ := NewVerifier(VerifierConfig{Keys: a, Issuer: testIss, Audience: testAud, Now: clk.Now})
	vb, _ := NewVerifier(VerifierConfig{Keys: b, Issuer: testIss, Audience: testAud, Now: clk.Now, Online: online})
	old := issueWith(t, a, clk, "u1")
	oldKid := kidOf(t, old)
	for _, v := range []*Verifier{va, vb} {
		if _, err := v.Verify(ctx, old); err != nil { // and cache it
			t.Fatal(err)
		}
	}

	signing, err := a.Revoke(ctx, oldKid)
	if err != nil {
		t.Fatal(err)
	}
	if signing == oldKid || signing == "" {
		t.Fatalf("Revoke answered %q as the signing key", signing)
	}
	if strings.Contains(string(a.JWKS()), oldKid) || !strings.Contains(string(a.JWKS()), signing) {
		t.Errorf("JWKS after the revocation: %s", a.JWKS())
	}
	if _, err := va.Verify(ctx, old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("the revoking replica accepted a token of the revoked key: %v", err)
	}
	// Replica B has not reloaded; online verification syncs at once.
	if _, err := vb.Verify(ctx, old); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("the other replica, online: %v, want the key revoked", err)
	}
	if strings.Contains(string(b.JWKS()), oldKid) {
		t.Error("the other replica still publishes the revoked key")
	}
	// A fresh key signs at once (no pre-publication), on both replicas.
	for name, kr := range map[string]*Keyring{"A": a, "B": b} {
		tok := issueWith(t, kr, clk, "u2")
		if kidOf(t, tok) != signing {
			t.Errorf("replica %s signs with %s, want the fresh key %s", name, kidOf(t, tok), signing)
		}
		for _, v := range []*Verifier{va, vb} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Errorf("a token of the fresh key: %v", err)
			}
		}
	}
	// The private key is erased from the store; the tombstone stays.
	var sr storedRing
	sr, _ = unmarshalRing(st.blob)
	for _, sk := range sr.Keys {
		if sk.Kid == oldKid && (sk.Sealed != nil || sk.Revoked == 0) {
			t.Errorf("stored revoked key: sealed %d bytes, revoked %d", len(sk.Sealed), sk.Revoked)
		}
	}
	infos := a.Keys()
	if infos[0].ID != oldKid || infos[0].State != KeyRevoked || !infos[0].Revoked.Equal(t0) {
		t.Errorf("Keys()[0] = %+v", infos[0])
	}
	// Revoking again changes nothing; an unknown kid is ErrKeyNotFound.
	ver := st.version
	if again, err := a.Revoke(ctx, oldKid); err != nil || again != signing || st.version != ver {
		t.Errorf("second revoke: %q, %v (version %d -> %d)", again, err, ver, st.version)
	}
	if _, err := a.Revoke(ctx, "no-such-kid"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("unknown kid: %v", err)
	}
	// The tombstone goes once every token the key signed has expired.
	clk.Add(10*time.Minute + DefaultLeeway)
	if err := a.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Keys()); n != 1 {
		t.Errorf("%d keys after the tombstone's time, want 1", n)
	}
	// With an unchanged keyring, online verification reads the version only.
	saves := st.saves
	calls := st.versionCalls
	b.Reload(ctx)
	tok := issueWith(t, a, clk, "u3")
	for range 5 {
		if _, err := vb.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if st.versionCalls-calls < 5 || st.saves != saves {
		t.Errorf("online verification: %d version reads, %d saves", st.versionCalls-calls, st.saves-saves)
	}
	// A keyring that cannot be read fails closed.
	st.mu.Lock()
	st.loadErr = errors.New("backend down")
	st.mu.Unlock()
	if _, err := vb.Verify(ctx, tok); err == nil {
		t.Error("online verification succeeded without reading the keyring")
	}
}

// Revoking a pending or a retired key leaves the signing key alone, and
// revoking keys never moves the retirement of the others.
func TestRevokeOtherKeys(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	kr := openRing(t, st, clk, EdDSA)
	first, _ := kr.SigningKey(ctx)
	pending, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signing, err := kr.Revoke(ctx, pending)
	if err != nil || signing != first.ID() {
		t.Fatalf("revoking the pending key: signing %q, %v; want the first key still", signing, err)
	}
	if strings.Contains(string(kr.JWKS()), pending) {
		t.Error("the revoked pending key is still published")
	}
	if ks := kr.Keys(); ks[0].State != KeyActive || !ks[0].Retires.IsZero() {
		t.Errorf("a pending key revoked before it signed still retires the active one: %+v", ks[0])
	}
	// Rotation goes on as usual: a new pending key is made.
	next, _ := kr.Rotate(ctx)
	if next == pending {
		t.Fatal("Rotate returned the revoked key")
	}
	clk.Add(DefaultPrePublication)
	second, _ := kr.SigningKey(ctx)
	if second.ID() != next {
		t.Fatalf("signing with %s, want %s", second.ID(), next)
	}
	retired := kr.Keys()[0]
	if retired.ID != first.ID() || retired.State != KeyRetired {
		t.Fatalf("keys %+v", kr.Keys())
	}
	// Revoking the signing key now must not bring back the retired one,
	// nor extend its life.
	clk.Add(time.Minute)
	fresh, err := kr.Revoke(ctx, next)
	if err != nil || fresh == first.ID() || fresh == next {
		t.Fatalf("revoking the signing key: %q, %v", fresh, err)
	}
	for _, ki := range kr.Keys() {
		if ki.ID == first.ID() && (!ki.Retires.Equal(retired.Retires) || !ki.Removes.Equal(retired.Removes)) {
			t.Errorf("the retired key's timeline moved: %+v, was %+v", ki, retired)
		}
	}
	// Revoking the retired key: it goes at once, the fresh key keeps signing.
	if s, err := kr.Revoke(ctx, first.ID()); err != nil || s != fresh {
		t.Errorf("revoking the retired key: %q, %v", s, err)
	}
	if !bytes.Contains(kr.JWKS(), []byte(fresh)) || bytes.Contains(kr.JWKS(), []byte(first.ID())) {
		t.Errorf("JWKS %s", kr.JWKS())
	}
}

// Revoking the only key makes a new one that signs at once.
func TestRevokeOnlyKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	kr := openRing(t, &fakeKeyStore{}, clk, ES256)
	only, _ := kr.SigningKey(ctx)
	fresh, err := kr.Revoke(ctx, only.ID())
	if err != nil || fresh == only.ID() {
		t.Fatalf("%q, %v", fresh, err)
	}
	k, err := kr.SigningKey(ctx)
	if err != nil || k.ID() != fresh || k.Algorithm() != ES256 {
		t.Fatalf("signing key %v, %v", k, err)
	}
}
