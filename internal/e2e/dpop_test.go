// Package e2e tests latch end to end: real latch serve processes built
// from this repository, on a real store, called over HTTP as apps and
// their clients call them.
package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/dpoptest"
	"github.com/latch-sessions/latch/internal/serveproc"
	"github.com/latch-sessions/latch/internal/testredis"
)

// deployment is two latch serve replicas on one private Redis, sharing
// KEK and API key, as a production deployment behind a load balancer.
type deployment struct {
	a, b   *serveproc.Server
	apiKey string
}

const publicURL = "https://latch.example"

func deploy(t *testing.T, args ...string) *deployment {
	t.Helper()
	rs := testredis.StartServer(t)
	kek := make([]byte, 32)
	rand.Read(kek)
	apiKey := rand.Text() + rand.Text()
	o := serveproc.Options{
		Store:  "redis://" + rs.Addr(),
		APIKey: apiKey,
		Env:    []string{"LATCH_KEK=" + base64.StdEncoding.EncodeToString(kek)},
		// A touch interval of one second lets the test see that a refused
		// proof records no activity, a grace of one second that a spent
		// token is not taken for reuse; no rate limit for the attack table.
		Args: []string{"--public-url", publicURL, "--touch-interval", "1s", "--refresh-grace", "1s", "--rate-limit", "0"},
	}
	o.Args = append(o.Args, args...)
	d := &deployment{apiKey: apiKey}
	d.a = serveproc.Start(t, o)
	d.b = serveproc.Start(t, o)
	return d
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, apiKey, body string, hdr map[string]string) *answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := &answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &a.body)
	return a
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// wantRefused checks a 401 invalid_dpop_proof problem for reason with the
// RFC 9449 §7.1 challenge.
func wantRefused(t *testing.T, a *answer, reason, what string) {
	t.Helper()
	ch := a.header.Get("WWW-Authenticate")
	if a.body["reason"] != reason {
		t.Errorf("%s: reason %v in %s, want %q", what, a.body["reason"], a.raw, reason)
	}
	if a.status != http.StatusUnauthorized || a.body["code"] != "invalid_dpop_proof" ||
		a.header.Get("Content-Type") != "application/problem+json" ||
		!strings.HasPrefix(ch, `DPoP algs="`) || !strings.Contains(ch, `error="invalid_dpop_proof"`) || !strings.Contains(ch, `error_description="`) {
		t.Errorf("%s: %d %s, WWW-Authenticate %q; want 401 invalid_dpop_proof with the DPoP challenge", what, a.status, a.raw, ch)
	}
}

func replicas(d *deployment) []*serveproc.Server { return []*serveproc.Server{d.a, d.b} }

// session reads a session through the back channel, without touching it.
func (d *deployment) session(t *testing.T, id string) map[string]any {
	t.Helper()
	a := call(t, "GET", d.a.URL+"/v1/sessions/"+id, d.apiKey, "", nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET session: %d %s", a.status, a.raw)
	}
	s, _ := a.body["session"].(map[string]any)
	if s == nil {
		s = a.body
	}
	return s
}

// TestDPoPAttacksEndToEnd runs the attack table against two latch serve
// replicas on one Redis: on refresh (the DPoP header, as a client calling
// latch directly, and relayed by an app backend), on verify of a bound
// access token, and on whoami. Every refusal is 401 invalid_dpop_proof
// with the RFC 9449 challenge and changes nothing: the refresh token is
// not rotated, the session neither revoked nor touched (its last use, IP
// and user agent stay), and the good proof made afterwards still works. A
// proof spent on one replica is refused on the other: the replay cache is
// the store's.
func TestDPoPAttacksEndToEnd(t *testing.T) {
	d := deploy(t)
	good, other := dpoptest.NewKey(), dpoptest.NewKey()
	const appLogin, appRefresh, api = "https://app.example/login", "https://app.example/refresh", "https://api.example/orders"
	create := func(k *dpoptest.Key) map[string]any {
		t.Helper()
		a := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{
			"subject": "alice", "ip": "198.51.100.1", "user_agent": "alice's browser",
			"dpop": map[string]string{"proof": k.Proof("POST", appLogin, "", time.Now()).String(), "htm": "POST", "htu": appLogin},
		}), nil)
		if a.status != http.StatusCreated || a.body["token_type"] != "DPoP" {
			t.Fatalf("create bound: %d %s", a.status, a.raw)
		}
		return a.body
	}
	// Create: every bad relayed proof is refused, creates nothing and
	// revokes nothing (not even the session named to be replaced).
	plain := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, `{"subject":"mallory"}`, nil)
	if plain.status != http.StatusCreated {
		t.Fatalf("create: %d %s", plain.status, plain.raw)
	}
	for i, at := range dpoptest.Attacks() {
		if at.Name == "wrong key" || at.Name == "no proof" { // nothing is bound yet
			continue
		}
		p := at.Make(good, other, dpoptest.Request{Method: "POST", URL: appLogin, Now: time.Now()})
		a := call(t, "POST", replicas(d)[i%2].URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{
			"subject": "mallory", "replace_session_token": plain.body["session_token"],
			"dpop": map[string]string{"proof": p, "htm": "POST", "htu": appLogin},
		}), nil)
		wantRefused(t, a, at.Reason, "create: "+at.Name)
	}
	if l := call(t, "GET", d.a.URL+"/v1/subjects/mallory/sessions", d.apiKey, "", nil); strings.Count(l.raw, `"id":"ses_`) != 1 {
		t.Errorf("after refused creates the subject's sessions are %s, want the one created", l.raw)
	}
	// A create refused for its input spends no proof: the fixed request
	// with the same proof binds.
	p0 := good.Proof("POST", appLogin, "", time.Now()).String()
	relay0 := map[string]string{"proof": p0, "htm": "POST", "htu": appLogin}
	if a := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{"subject": "carol",
		"auth_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "dpop": relay0}), nil); a.status != http.StatusBadRequest {
		t.Fatalf("create with a future auth_time: %d %s, want 400", a.status, a.raw)
	}
	if a := call(t, "POST", d.b.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]any{"subject": "carol", "dpop": relay0}), nil); a.status != http.StatusCreated || a.body["token_type"] != "DPoP" {
		t.Fatalf("the same proof after a create refused for its input: %d %s", a.status, a.raw)
	}

	s := create(good)
	id := s["session"].(map[string]any)["id"].(string)
	rt := s["refresh_token"].(string)

	// Refresh, the DPoP header, alternating replicas.
	direct := publicURL + "/v1/refresh"
	replicas := replicas(d)
	for i, at := range dpoptest.Attacks() {
		r := replicas[i%2]
		p := at.Make(good, other, dpoptest.Request{Method: "POST", URL: direct, Now: time.Now()})
		wantRefused(t, call(t, "POST", r.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt}), map[string]string{"DPoP": p}), at.Reason, "refresh (header): "+at.Name)
		if p == "" {
			continue
		}
		relayed := at.Make(good, other, dpoptest.Request{Method: "POST", URL: appRefresh, Now: time.Now()})
		wantRefused(t, call(t, "POST", r.URL+"/v1/refresh", "", jsonOf(map[string]any{"refresh_token": rt,
			"dpop": map[string]string{"proof": relayed, "htm": "POST", "htu": appRefresh}}), nil), at.Reason, "refresh (relayed): "+at.Name)
	}
	// A proof with ath on a refresh, where no access token goes with it.
	wantRefused(t, call(t, "POST", d.b.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt}),
		map[string]string{"DPoP": good.Proof("POST", direct, "an access token", time.Now()).String()}), "ath_unexpected", "refresh: ath without an access token")

	// Nothing changed: the original refresh token rotates now, on B.
	p := good.Proof("POST", direct, "", time.Now()).String()
	a := call(t, "POST", d.b.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt}), map[string]string{"DPoP": p})
	if a.status != http.StatusOK || a.body["token_type"] != "DPoP" {
		t.Fatalf("refresh with a good proof after the refusals: %d %s", a.status, a.raw)
	}
	rt2, access := a.body["refresh_token"].(string), a.body["access_token"].(string)
	// The proof spent on B is refused on A, with the new refresh token.
	wantRefused(t, call(t, "POST", d.a.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt2}), map[string]string{"DPoP": p}), "jti_replayed", "refresh: a proof spent on B replayed on A")
	// The spent refresh token without the key does not revoke the session
	// (reuse detection needs a proof by the key of a bound session).
	time.Sleep(1500 * time.Millisecond) // past the refresh grace
	wantRefused(t, call(t, "POST", d.a.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt}), map[string]string{"DPoP": other.Proof("POST", direct, "", time.Now()).String()}), "key_mismatch", "refresh: the spent token with another key")

	// Verify of the bound access token, relayed by the API that got it.
	before := d.session(t, id)
	time.Sleep(1100 * time.Millisecond) // past the touch interval
	verify := func(r *serveproc.Server, tok, p string) *answer {
		body := map[string]any{"access_token": tok, "ip": "203.0.113.66", "user_agent": "thief"}
		if p != "" {
			body["dpop"] = map[string]string{"proof": p, "htm": "GET", "htu": api}
		}
		return call(t, "POST", r.URL+"/v1/sessions/verify", d.apiKey, jsonOf(body), nil)
	}
	for i, at := range dpoptest.Attacks() {
		wantRefused(t, verify(replicas[i%2], access, at.Make(good, other, dpoptest.Request{Method: "GET", URL: api, AccessToken: access, Now: time.Now()})), at.Reason, "verify: "+at.Name)
	}
	wantRefused(t, verify(d.a, access, good.Proof("GET", api, "", time.Now()).String()), "ath_missing", "verify: missing ath")
	wantRefused(t, verify(d.b, access, good.Proof("GET", api, s["access_token"].(string), time.Now()).String()), "ath", "verify: ath of another token")
	// A token bound to another key, with a proof by this one.
	foreign := create(other)["access_token"].(string)
	wantRefused(t, verify(d.a, foreign, good.Proof("GET", api, foreign, time.Now()).String()), "key_mismatch", "verify: token bound to another key")
	// A bound token sent as plain Bearer to latch's own endpoint.
	wh := call(t, "GET", d.b.URL+"/v1/whoami", "", "", map[string]string{"Authorization": "Bearer " + access})
	wantRefused(t, wh, "bound_as_bearer", "whoami: a bound token as Bearer")
	lo := call(t, "POST", d.a.URL+"/v1/logout", "", "{}", map[string]string{"Authorization": "Bearer " + access})
	wantRefused(t, lo, "bound_as_bearer", "logout: a bound token as Bearer")

	after := d.session(t, id)
	for _, k := range []string{"last_seen_at", "idle_expires_at", "ip", "user_agent", "version"} {
		if jsonOf(after[k]) != jsonOf(before[k]) {
			t.Errorf("refused proofs changed the session's %s: %v, was %v", k, after[k], before[k])
		}
	}

	// The good proof works, on A; replayed on B it is refused.
	p = good.Proof("GET", api, access, time.Now()).String()
	if a := verify(d.a, access, p); a.status != http.StatusOK {
		t.Fatalf("verify with a good proof: %d %s", a.status, a.raw)
	}
	wantRefused(t, verify(d.b, access, p), "jti_replayed", "verify: a proof spent on A replayed on B")
	if got := d.session(t, id); got["ip"] != "203.0.113.66" {
		t.Errorf("the accepted verify did not record activity: ip %v", got["ip"])
	}
	// whoami with Authorization: DPoP and a proof for latch's URL.
	wp := good.Proof("GET", publicURL+"/v1/whoami", access, time.Now()).String()
	if a := call(t, "GET", d.b.URL+"/v1/whoami", "", "", map[string]string{"Authorization": "DPoP " + access, "DPoP": wp}); a.status != http.StatusOK {
		t.Fatalf("whoami with DPoP: %d %s", a.status, a.raw)
	}
	if a := call(t, "GET", d.a.URL+"/v1/whoami", "", "", map[string]string{"Authorization": "DPoP " + access, "DPoP": wp}); a.status == http.StatusOK {
		t.Fatal("whoami: a proof spent on B accepted on A")
	}

	// The rotated refresh token still works: nothing above revoked it.
	if a := call(t, "POST", d.a.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt2}),
		map[string]string{"DPoP": good.Proof("POST", direct, "", time.Now()).String()}); a.status != http.StatusOK {
		t.Fatalf("refresh after the attacks: %d %s", a.status, a.raw)
	}
}

// TestDPoPNoncesAcrossReplicas: with --dpop-nonce, a proof without a nonce
// is 401 use_dpop_nonce with the nonce in DPoP-Nonce and the RFC 9449
// challenge, and rotates nothing; the nonce replica B sent is accepted by
// replica A (both derive it from the shared KEK and issuer).
func TestDPoPNoncesAcrossReplicas(t *testing.T) {
	d := deploy(t, "--dpop-nonce")
	k := dpoptest.NewKey()
	c := call(t, "POST", d.a.URL+"/v1/sessions", d.apiKey, jsonOf(map[string]string{"subject": "alice", "dpop_jkt": k.JKT}), nil)
	if c.status != http.StatusCreated {
		t.Fatalf("create: %d %s", c.status, c.raw)
	}
	rt := c.body["refresh_token"].(string)
	direct := publicURL + "/v1/refresh"
	refresh := func(r *serveproc.Server, nonce string) *answer {
		p := k.Proof("POST", direct, "", time.Now())
		if nonce != "" {
			p.Claims["nonce"] = nonce
		}
		return call(t, "POST", r.URL+"/v1/refresh", "", jsonOf(map[string]string{"refresh_token": rt}), map[string]string{"DPoP": p.String()})
	}
	a := refresh(d.b, "")
	nonce, ch := a.header.Get("DPoP-Nonce"), a.header.Get("WWW-Authenticate")
	if a.status != http.StatusUnauthorized || a.body["code"] != "use_dpop_nonce" || nonce == "" ||
		!strings.HasPrefix(ch, `DPoP algs="`) || !strings.Contains(ch, `error="use_dpop_nonce"`) {
		t.Fatalf("a proof without a nonce: %d %s, DPoP-Nonce %q, WWW-Authenticate %q", a.status, a.raw, nonce, ch)
	}
	if a := refresh(d.a, "not-a-nonce"); a.status != http.StatusUnauthorized || a.body["code"] != "use_dpop_nonce" {
		t.Fatalf("a proof with a made-up nonce: %d %s", a.status, a.raw)
	}
	a = refresh(d.a, nonce)
	if a.status != http.StatusOK || a.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("B's nonce on A: %d %s (DPoP-Nonce %q); the refusals must not have rotated the token", a.status, a.raw, a.header.Get("DPoP-Nonce"))
	}
}
