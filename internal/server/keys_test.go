package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/testredis"
)

// --signing-alg RS256: access tokens carry alg RS256, the JWKS publishes
// the RSA key, and the server verifies its own tokens.
func TestSigningAlgorithmRS256(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SigningAlgorithm = accesstoken.RS256 })
	c := h.create("alice", "")
	hdr, _, _ := strings.Cut(c.accessToken, ".")
	b, _ := base64.RawURLEncoding.DecodeString(hdr)
	if !strings.Contains(string(b), `"alg":"RS256"`) {
		t.Fatalf("access token header %s, want alg RS256", b)
	}
	r := h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	wantStatus(t, r, 200)
	keys, err := accesstoken.ParseJWKS(r.body)
	if err != nil || len(keys) != 1 || keys[0].Algorithm() != accesstoken.RS256 || !strings.Contains(string(r.body), `"kty":"RSA"`) {
		t.Fatalf("JWKS %s: %v %v", r.body, keys, err)
	}
	wantStatus(t, h.api("POST", "/v1/sessions/verify", `{"access_token":"`+c.accessToken+`"}`), 200)
	ks, _ := accesstoken.NewStaticKeys(keys...)
	v, _ := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: ks, Issuer: "https://latch.test", Audience: "latch", Now: h.clock.Now})
	if _, err := v.Verify(context.Background(), c.accessToken); err != nil {
		t.Errorf("offline verify with the published RSA key: %v", err)
	}
}

func tokenKid(t *testing.T, tok string) string {
	t.Helper()
	hdr, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	json.Unmarshal(b, &h)
	return h.Kid
}

// Key compromise across two replicas on one Redis: a key revoked through
// A leaves JWKS and its tokens are refused by B at once (no waiting, no
// reload interval), a fresh key signs from then on on both, and a client
// whose access token is refused refreshes through B and gets a token of
// the fresh key.
func TestRevokeKeyAcrossReplicas(t *testing.T) {
	base := "redis://" + testredis.Addr(t)
	url := base + "?prefix=" + uniquePrefix(t, base, "latchkeys")
	kek := bytes.Repeat([]byte{8}, 32)
	a := startReplica(t, url, kek)
	b := startReplica(t, url, kek)
	var buf bytes.Buffer
	if code := call(t, a, "POST", "/v1/sessions", `{"subject":"carol"}`, &buf); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, buf.String())
	}
	c := parseCreated(t, buf.Bytes())
	oldKid := tokenKid(t, c.accessToken)
	if code, body := verifyOnline(t, b, c.accessToken); code != http.StatusOK { // B caches it
		t.Fatalf("verify through B: %d %s", code, body)
	}

	if code := call(t, a, "POST", "/v1/keys/"+oldKid+"/revoke", "", &buf); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, buf.String())
	}
	var rv struct{ Kid string }
	if err := json.Unmarshal(buf.Bytes(), &rv); err != nil || rv.Kid == "" || rv.Kid == oldKid {
		t.Fatalf("revoke answered %s", buf.String())
	}
	revoked := time.Now()
	if code, body := verifyOnline(t, a, c.accessToken); code != http.StatusUnauthorized || !strings.Contains(body, `"invalid_token"`) {
		t.Errorf("A accepted a token of the key it revoked: %d %s", code, body)
	}
	// B checks the keyring's version on every online verification, from
	// its client-side cache, which Redis invalidated before it answered
	// A's write: B refuses the token as soon as that message is read,
	// exactly as it sees a revoked session.
	for {
		code, body := verifyOnline(t, b, c.accessToken)
		if code == http.StatusUnauthorized && strings.Contains(body, `"invalid_token"`) {
			t.Logf("B refused the revoked key's token %v after A revoked it", time.Since(revoked))
			break
		}
		if code != http.StatusOK || time.Since(revoked) > time.Second {
			t.Fatalf("B after the revocation: %d %s", code, body)
		}
		time.Sleep(100 * time.Microsecond)
	}
	for name, ts := range map[string]*httptest.Server{"A": a, "B": b} {
		call(t, ts, "GET", "/.well-known/jwks.json", "", &buf)
		if strings.Contains(buf.String(), oldKid) || !strings.Contains(buf.String(), rv.Kid) {
			t.Errorf("%s's JWKS after the revocation: %s", name, buf.String())
		}
		call(t, ts, "GET", "/v1/keys", "", &buf)
		if !strings.Contains(buf.String(), `"state":"revoked"`) {
			t.Errorf("%s's key list: %s", name, buf.String())
		}
	}

	// The client refreshes through B: its new token is the fresh key's.
	if code := call(t, b, "POST", "/v1/refresh", fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken), &buf); code != http.StatusOK {
		t.Fatalf("refresh through B: %d %s", code, buf.String())
	}
	var rf struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(buf.Bytes(), &rf)
	if got := tokenKid(t, rf.AccessToken); got != rv.Kid {
		t.Errorf("the refreshed token is signed by %s, want the fresh key %s", got, rv.Kid)
	}
	if code := call(t, b, "POST", "/v1/sessions", `{"subject":"dave"}`, &buf); code != http.StatusCreated {
		t.Fatalf("create through B: %d", code)
	}
	if got := tokenKid(t, parseCreated(t, buf.Bytes()).accessToken); got != rv.Kid {
		t.Errorf("B signs new sessions with %s, want %s", got, rv.Kid)
	}
	for name, ts := range map[string]*httptest.Server{"A": a, "B": b} {
		if code, body := verifyOnline(t, ts, rf.AccessToken); code != http.StatusOK {
			t.Errorf("%s refused the refreshed token: %d %s", name, code, body)
		}
	}
}

func TestRevokeKeyErrors(t *testing.T) {
	h := newHarness(t)
	wantProblem(t, h.api("POST", "/v1/keys/no-such-kid/revoke", ""), http.StatusNotFound, CodeNotFound)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/keys/x/revoke"}), http.StatusUnauthorized, CodeUnauthorized)
	// Revoking the only key works: a new one signs at once.
	events := h.stream("?types=keys.changed", "")
	c := h.create("erin", "")
	kid := tokenKid(t, c.accessToken)
	r := h.api("POST", "/v1/keys/"+kid+"/revoke", "")
	wantStatus(t, r, http.StatusOK)
	fresh, _ := r.json(t)["kid"].(string)
	if fresh == "" || fresh == kid {
		t.Fatalf("revoke answered %s", r.body)
	}
	if got := tokenKid(t, h.create("erin", "").accessToken); got != fresh {
		t.Errorf("signing with %s after revoking the only key, want %s", got, fresh)
	}
	wantProblem(t, h.api("POST", "/v1/sessions/verify", `{"access_token":"`+c.accessToken+`"}`), http.StatusUnauthorized, CodeInvalidToken)
	if e, _ := events.next(); e.event != "keys.changed" || e.json(t)["reason"] != "revoked" || e.json(t)["kid"] != kid {
		t.Errorf("after a revocation the stream sent %+v, want keys.changed for %s", e, kid)
	}
}

// With the store down, nothing that needs the keyring's current state is
// answered from the replica's snapshot: a revoked key could hide in it.
func TestKeysStoreDown(t *testing.T) {
	h := newHarness(t)
	c := h.create("frank", "")
	h.store.down.Store(true)
	wantProblem(t, h.do(req{method: "GET", path: "/.well-known/jwks.json"}), http.StatusServiceUnavailable, CodeStoreUnavailable)
	wantProblem(t, h.api("POST", "/v1/sessions/verify", `{"access_token":"`+c.accessToken+`"}`), http.StatusServiceUnavailable, CodeStoreUnavailable)
	wantProblem(t, h.api("POST", "/v1/keys/x/revoke", ""), http.StatusServiceUnavailable, CodeStoreUnavailable)
	h.store.down.Store(false)
	wantStatus(t, h.do(req{method: "GET", path: "/.well-known/jwks.json"}), http.StatusOK)
}
