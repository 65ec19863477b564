package accesstoken

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// fakeKeyStore is a store.KeyStore shared by "replicas" in tests.
type fakeKeyStore struct {
	mu       sync.Mutex
	blob     []byte
	version  uint64
	loadErr  error
	saves    int
	conflict int // fail this many saves with ErrConflict (after a foreign write)
}

func (s *fakeKeyStore) LoadKeyring(context.Context) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return nil, 0, s.loadErr
	}
	return bytes.Clone(s.blob), s.version, nil
}

func (s *fakeKeyStore) SaveKeyring(_ context.Context, blob []byte, expect uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conflict > 0 {
		s.conflict--
		s.version++ // a concurrent writer saved the same content
		return store.ErrConflict
	}
	if expect != s.version {
		return store.ErrConflict
	}
	s.blob, s.version = bytes.Clone(blob), s.version+1
	s.saves++
	return nil
}

var _ store.KeyStore = (*fakeKeyStore)(nil)

var testKEK = bytes.Repeat([]byte{0x42}, KEKSize)

func openRing(t *testing.T, st store.KeyStore, clk *clock, alg Algorithm) *Keyring {
	t.Helper()
	kr, err := OpenKeyring(context.Background(), KeyringConfig{Store: st, KEK: testKEK, Now: clk.Now,
		Algorithm: alg, MaxTokenTTL: 10 * time.Minute, ReloadInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestKeyringReplicasShareKeys(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []Algorithm{EdDSA, ES256} {
		t.Run(string(alg), func(t *testing.T) {
			st := &fakeKeyStore{}
			clk := newClock(t0)
			a := openRing(t, st, clk, alg)
			b := openRing(t, st, clk, alg)
			ka, _ := a.SigningKey(ctx)
			kb, _ := b.SigningKey(ctx)
			if ka.ID() != kb.ID() || ka.Algorithm() != alg {
				t.Fatalf("replicas disagree: %s vs %s", ka.ID(), kb.ID())
			}
			if st.saves != 1 {
				t.Errorf("saves = %d, want 1 (second replica loads)", st.saves)
			}
			// No private key material in the stored blob.
			if ka.edPriv != nil && (bytes.Contains(st.blob, ka.edPriv.Seed()) ||
				bytes.Contains(st.blob, []byte(base64.StdEncoding.EncodeToString(ka.edPriv.Seed())))) {
				t.Error("seed stored in the clear")
			}
			// Tokens from a verify on b.
			issA, _ := NewIssuer(IssuerConfig{Keys: a, Issuer: testIss, Audience: testAud, Now: clk.Now})
			vB, _ := NewVerifier(VerifierConfig{Keys: b, Issuer: testIss, Audience: testAud, Now: clk.Now})
			tok, err := issA.Issue(ctx, Claims{Subject: "u"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vB.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
			// a rotates; b learns about the new key by reload on unknown kid.
			kid, err := a.Rotate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(a.JWKS()), kid) {
				t.Error("new key not published at once")
			}
			if k, _ := a.SigningKey(ctx); k.ID() == kid {
				t.Error("new key signs before pre-publication ended")
			}
			clk.Add(DefaultPrePublication)
			if k, _ := a.SigningKey(ctx); k.ID() != kid {
				t.Error("new key not active after pre-publication")
			}
			tok2, _ := issA.Issue(ctx, Claims{Subject: "u"})
			if _, err := vB.Verify(ctx, tok2); err != nil {
				t.Fatalf("replica b did not reload on unknown kid: %v", err)
			}
			if k, _ := b.SigningKey(ctx); k.ID() != kid {
				t.Error("replica b signs with the old key after reloading")
			}
		})
	}
}

func TestKeyringRotationTimeline(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	kr := openRing(t, st, clk, EdDSA)
	first, _ := kr.SigningKey(ctx)
	// A token signed by the first key that claims to live for a year.
	longLived, err := sign(first, &Claims{Issuer: testIss, Audience: testAud, Subject: "u", IssuedAt: t0, ExpiresAt: t0.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(VerifierConfig{Keys: kr, Issuer: testIss, Audience: testAud, Now: clk.Now})
	if _, err := v.Verify(ctx, longLived); err != nil {
		t.Fatal(err)
	}
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(kr.Keys()); n != 1 {
		t.Fatalf("Maintain rotated a fresh key: %d keys", n)
	}
	// PrePublication before RotationPeriod: the successor is published.
	clk.Set(t0.Add(DefaultRotationPeriod - DefaultPrePublication))
	if err := kr.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	keys := kr.Keys()
	if len(keys) != 2 || keys[0].State != KeyActive || keys[1].State != KeyPending {
		t.Fatalf("keys = %+v", keys)
	}
	if !keys[1].Activates.Equal(t0.Add(DefaultRotationPeriod)) {
		t.Errorf("successor activates %v, want %v", keys[1].Activates, t0.Add(DefaultRotationPeriod))
	}
	if keys[1].Activates.Sub(clk.Now()) <= kr.JWKSMaxAge() {
		t.Error("pre-publication not longer than the JWKS cache lifetime")
	}
	// Maintain again changes nothing.
	ver := st.version
	kr.Maintain(ctx)
	if st.version != ver {
		t.Error("Maintain wrote without a change")
	}
	// Successor activates; first is retired but still verifies.
	clk.Set(t0.Add(DefaultRotationPeriod))
	if k, _ := kr.SigningKey(ctx); k.ID() == first.ID() {
		t.Error("old key still signing")
	}
	keys = kr.Keys()
	if keys[0].State != KeyRetired || !keys[0].Removes.Equal(keys[0].Retires.Add(10*time.Minute+DefaultLeeway)) {
		t.Errorf("keys = %+v", keys)
	}
	if _, err := kr.VerificationKey(ctx, first.ID()); err != nil {
		t.Errorf("retired key: %v", err)
	}
	// After the retirement period it no longer verifies, and Maintain prunes it.
	clk.Add(10*time.Minute + DefaultLeeway)
	if _, err := kr.VerificationKey(ctx, first.ID()); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("removed key: %v", err)
	}
	if _, err := v.Verify(ctx, longLived); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of a rotated-out key after retirement: %v", err)
	}
	kr.Maintain(ctx)
	if n := len(kr.Keys()); n != 1 || strings.Contains(string(kr.JWKS()), first.ID()) {
		t.Errorf("not pruned: %d keys", n)
	}
	// Rotate is idempotent while a key waits.
	k1, _ := kr.Rotate(ctx)
	k2, _ := kr.Rotate(ctx)
	if k1 != k2 {
		t.Error("second Rotate added another pending key")
	}
}

// TestRotationInFlight: tokens issued right up to a rotation keep
// verifying until their exp, on this replica and on another.
func TestRotationInFlight(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	a := openRing(t, st, clk, EdDSA)
	b := openRing(t, st, clk, EdDSA)
	iss, _ := NewIssuer(IssuerConfig{Keys: a, Issuer: testIss, Audience: testAud, Now: clk.Now, TTL: 10 * time.Minute})
	va, _ := NewVerifier(VerifierConfig{Keys: a, Issuer: testIss, Audience: testAud, Now: clk.Now})
	vb, _ := NewVerifier(VerifierConfig{Keys: b, Issuer: testIss, Audience: testAud, Now: clk.Now, CacheSize: -1})
	type issued struct {
		tok string
		exp time.Time
	}
	var inflight []issued
	for step := range 200 {
		if step%20 == 0 {
			if _, err := a.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if step%7 == 0 {
			a.Maintain(ctx)
			b.Maintain(ctx)
		}
		tok, err := iss.Issue(ctx, Claims{Subject: "u"})
		if err != nil {
			t.Fatal(err)
		}
		inflight = append(inflight, issued{tok, clk.Now().Add(10 * time.Minute)})
		kept := inflight[:0]
		for _, in := range inflight {
			if !clk.Now().Before(in.exp) {
				continue
			}
			for _, v := range []*Verifier{va, vb} {
				if _, err := v.Verify(ctx, in.tok); err != nil {
					t.Fatalf("step %d: in-flight token refused before exp: %v", step, err)
				}
			}
			kept = append(kept, in)
		}
		inflight = kept
		clk.Add(7 * time.Minute)
	}
}

func TestKeyringConflictRetry(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	kr := openRing(t, st, clk, EdDSA)
	st.mu.Lock()
	st.conflict = 3
	st.mu.Unlock()
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatalf("rotate under conflicts: %v", err)
	}
	// Concurrent rotations on many replicas leave exactly one pending key.
	st2 := &fakeKeyStore{}
	rings := make([]*Keyring, 4)
	for i := range rings {
		rings[i] = openRing(t, st2, clk, EdDSA)
	}
	var wg sync.WaitGroup
	kids := make([]string, len(rings))
	for i, r := range rings {
		wg.Go(func() {
			var err error
			if kids[i], err = r.Rotate(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, k := range kids[1:] {
		if k != kids[0] {
			t.Fatalf("replicas rotated to different keys: %v", kids)
		}
	}
}

func TestKeyringEncryption(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	openRing(t, st, clk, EdDSA)
	// Wrong KEK.
	_, err := OpenKeyring(ctx, KeyringConfig{Store: st, KEK: bytes.Repeat([]byte{1}, 32), Now: clk.Now})
	if !errors.Is(err, ErrKeyring) {
		t.Errorf("wrong KEK: %v", err)
	}
	// Tampered activation time (bound into the AAD).
	var sr storedRing
	sr, _ = unmarshalRing(st.blob)
	sr.Keys[0].Activates += int64(time.Hour)
	b, _ := json.Marshal(sr)
	st.blob = appendRingChecksum(b)
	st.version++
	if _, err := OpenKeyring(ctx, KeyringConfig{Store: st, KEK: testKEK, Now: clk.Now}); !errors.Is(err, ErrKeyring) {
		t.Errorf("tampered keyring: %v", err)
	}
	// Missing or short KEK with a store.
	if _, err := OpenKeyring(ctx, KeyringConfig{Store: st}); !errors.Is(err, ErrKEK) {
		t.Errorf("no KEK: %v", err)
	}
	// Store failure is reported, not papered over.
	bad := &fakeKeyStore{loadErr: store.ErrUnavailable}
	if _, err := OpenKeyring(ctx, KeyringConfig{Store: bad, KEK: testKEK}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("store down: %v", err)
	}
	// In-memory keyring needs nothing.
	mem, err := OpenKeyring(ctx, KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := mem.SigningKey(ctx); err != nil || k.Algorithm() != EdDSA {
		t.Fatal(k, err)
	}
	// Bad configs.
	for _, cfg := range []KeyringConfig{{Algorithm: HS256}, {PrePublication: time.Minute, JWKSMaxAge: time.Hour}} {
		if _, err := OpenKeyring(ctx, cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

func TestKeyringJWKS(t *testing.T) {
	ctx := context.Background()
	kr := openRing(t, &fakeKeyStore{}, newClock(t0), EdDSA)
	kr.Rotate(ctx)
	doc := kr.JWKS()
	keys, err := ParseJWKS(doc)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseJWKS: %v, %d keys\n%s", err, len(keys), doc)
	}
	for _, k := range keys {
		if k.CanSign() || k.ID() != k.Thumbprint() {
			t.Errorf("bad published key %v", k)
		}
	}
	if bytes.Contains(doc, []byte(`"d"`)) {
		t.Error("private member in JWKS")
	}
	for _, bad := range []string{`{"keys":[{"kty":"oct","k":"AAAA"}]}`, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","d":"AAAA"}]}`, `nope`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS accepted %s", bad)
		}
	}
	skipped, err := ParseJWKS([]byte(`{"keys":[{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"../x"}]}`))
	if err != nil || len(skipped) != 0 {
		t.Errorf("unsupported keys not skipped: %v %v", skipped, err)
	}
}

func TestKEK(t *testing.T) {
	if _, err := KEKFromBase64("c2hvcnQ="); !errors.Is(err, ErrKEK) || !strings.Contains(err.Error(), "openssl rand") {
		t.Errorf("short KEK: %v", err)
	}
	if _, err := KEKFromBase64("!!!"); !errors.Is(err, ErrKEK) {
		t.Errorf("not base64: %v", err)
	}
	k, err := KEKFromBase64(" QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI= \n")
	if err != nil || !bytes.Equal(k, testKEK) {
		t.Fatalf("%x %v", k, err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "kek")
	k1, err := LoadOrCreateKEKFile(p)
	if err != nil || len(k1) != KEKSize {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKEKFile(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v", err)
	}
	os.Chmod(p, 0o640)
	if _, err := LoadOrCreateKEKFile(p); !errors.Is(err, ErrKEK) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable: %v", err)
	}
	os.Chmod(p, 0o600)
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := LoadOrCreateKEKFile(p); !errors.Is(err, ErrKEK) {
		t.Errorf("wrong size: %v", err)
	}
	if _, err := LoadOrCreateKEKFile(dir); err == nil {
		t.Error("directory accepted")
	}
}

// The first open records its InitialIssuer; later opens (another address,
// another replica) read it back instead of recording theirs, and a
// keyring stored before issuers were recorded gets one on its next open.
func TestKeyringRecordsIssuer(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	open := func(st store.KeyStore, iss string) *Keyring {
		t.Helper()
		kr, err := OpenKeyring(ctx, KeyringConfig{Store: st, KEK: testKEK, Now: clk.Now, InitialIssuer: iss})
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	st := &fakeKeyStore{}
	first := open(st, "http://127.0.0.1:8080")
	second := open(st, "http://127.0.0.1:8081")
	if first.Issuer() != "http://127.0.0.1:8080" || second.Issuer() != first.Issuer() {
		t.Fatalf("issuers %q and %q, want both the first one's", first.Issuer(), second.Issuer())
	}
	if err := second.Maintain(ctx); err != nil || second.Issuer() != first.Issuer() {
		t.Fatalf("after Maintain: %q, %v", second.Issuer(), err)
	}

	old := &fakeKeyStore{}
	open(old, "")
	var sr storedRing
	sr, _ = unmarshalRing(old.blob)
	if sr.Issuer != "" {
		t.Fatalf("a keyring opened without InitialIssuer recorded %q", sr.Issuer)
	}
	kid := sr.Keys[0].Kid
	upgraded := open(old, "https://auth.example")
	if upgraded.Issuer() != "https://auth.example" {
		t.Errorf("an older keyring got issuer %q", upgraded.Issuer())
	}
	if k, _ := upgraded.SigningKey(ctx); k.ID() != kid {
		t.Error("recording the issuer changed the keys")
	}
	if again := open(old, "http://other"); again.Issuer() != "https://auth.example" {
		t.Errorf("the recorded issuer was replaced by %q", again.Issuer())
	}
}

// TestKeyringChecksum: every single-bit flip in the stored keyring blob
// makes opening it fail closed (ErrKeyring, store.ErrUnavailable), and a
// keyring stored by an older binary (format 1: the JSON alone) still opens
// with the same keys.
func TestKeyringChecksum(t *testing.T) {
	ctx := context.Background()
	st := &fakeKeyStore{}
	clk := newClock(t0)
	want, err := openRing(t, st, clk, EdDSA).SigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(st.blob)
	for i := range good {
		for bit := range 8 {
			st.blob = bytes.Clone(good)
			st.blob[i] ^= 1 << bit
			st.version++
			_, err := OpenKeyring(ctx, KeyringConfig{Store: st, KEK: testKEK, Now: clk.Now})
			if !errors.Is(err, ErrKeyring) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("bit %d of byte %d flipped: OpenKeyring: %v, want ErrKeyring and ErrUnavailable", bit, i, err)
			}
		}
	}
	sr, err := unmarshalRing(good)
	if err != nil || sr.Format != 1 || !bytes.HasPrefix(good, []byte(ringSumPrefix)) {
		t.Fatalf("stored keyring: format %d, %v, starts %.12q", sr.Format, err, good)
	}
	// The reader of binaries before the checksum (json.Unmarshal, format 1,
	// unknown members ignored) still reads it: a rolling upgrade works.
	var prev struct {
		Format int `json:"format"`
		Keys   []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(good, &prev); err != nil || prev.Format != 1 || len(prev.Keys) != len(sr.Keys) || prev.Keys[0].Kid != want.ID() {
		t.Fatalf("the previous version's reader cannot read the keyring: %+v, %v", prev, err)
	}
	// A keyring without the checksum, as those binaries write it, is read.
	st.blob, _ = json.Marshal(sr)
	st.version++
	k, err := OpenKeyring(ctx, KeyringConfig{Store: st, KEK: testKEK, Now: clk.Now})
	if err != nil {
		t.Fatalf("format 1 keyring: %v", err)
	}
	if got, err := k.SigningKey(ctx); err != nil || got.ID() != want.ID() {
		t.Errorf("format 1 keyring: signing key %v, %v; want %s", got, err, want.ID())
	}
}
