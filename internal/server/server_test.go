package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

func TestCreateVerifyGet(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", `,"data":{"cart":3},"claims":{"role":"admin"},"ip":"203.0.113.9","user_agent":"curl/8"`)

	if c.body["token_type"] != "Bearer" || c.body["expires_in"] != float64(600) {
		t.Errorf("token_type/expires_in = %v/%v", c.body["token_type"], c.body["expires_in"])
	}
	for k, prefix := range map[string]string{"session_token": "lts_", "refresh_token": "ltr_", "access_token": "eyJ"} {
		if s, _ := c.body[k].(string); !strings.HasPrefix(s, prefix) {
			t.Errorf("%s does not start with %s", k, prefix)
		}
	}
	s := c.body["session"].(map[string]any)
	var keys []string
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"auth_time", "claims", "created_at", "data", "expires_at", "id", "idle_expires_at", "ip", "last_seen_at", "subject", "user_agent", "version"}
	if !slices.Equal(keys, want) {
		t.Errorf("session view members = %v, want %v", keys, want)
	}
	if s["created_at"] != "2030-01-02T03:04:05Z" || s["expires_at"] != "2030-01-03T03:04:05Z" || s["idle_expires_at"] != "2030-01-02T03:34:05Z" {
		t.Errorf("times are not RFC 3339 UTC as expected: %v", s)
	}
	if s["ip"] != "203.0.113.9" || s["user_agent"] != "curl/8" || s["version"] != float64(1) {
		t.Errorf("session = %v", s)
	}
	if d, _ := json.Marshal(s["data"]); string(d) != `{"cart":3}` {
		t.Errorf("data = %s", d)
	}

	// Verify by session token and by access token.
	r := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken))
	wantStatus(t, r, 200)
	if got := r.json(t)["session"].(map[string]any)["id"]; got != c.id {
		t.Errorf("verify returned session %v, want %v", got, c.id)
	}
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken))
	wantStatus(t, r, 200)
	if got := r.json(t)["session"].(map[string]any)["subject"]; got != "alice" {
		t.Errorf("verify by access token: subject %v", got)
	}
	// A token of the wrong kind is refused where another is expected.
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.refreshToken))
	wantProblem(t, r, 401, CodeInvalidToken)
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.sessionToken))
	wantProblem(t, r, 401, CodeInvalidToken)
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q,"access_token":%q}`, c.sessionToken, c.accessToken))
	wantProblem(t, r, 400, CodeBadRequest)
	r = h.api("POST", "/v1/sessions/verify", `{}`)
	wantProblem(t, r, 400, CodeBadRequest)

	// GET with ETag; If-None-Match.
	r = h.api("GET", "/v1/sessions/"+c.id, "")
	wantStatus(t, r, 200)
	if r.header.Get("ETag") != `"1"` {
		t.Errorf("ETag = %q, want \"1\"", r.header.Get("ETag"))
	}
	r = h.do(req{method: "GET", path: "/v1/sessions/" + c.id, apiKey: true, header: map[string]string{"If-None-Match": `"1"`}})
	wantStatus(t, r, http.StatusNotModified)

	// After the touch interval, verify records activity: version 2.
	h.clock.Advance(2 * time.Minute)
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q,"ip":"198.51.100.1"}`, c.sessionToken))
	wantStatus(t, r, 200)
	s = r.json(t)["session"].(map[string]any)
	if s["version"] != float64(2) || s["ip"] != "198.51.100.1" || s["last_seen_at"] != "2030-01-02T03:06:05Z" {
		t.Errorf("after touch: %v", s)
	}
}

func TestCreateBadInput(t *testing.T) {
	h := newHarness(t)
	for name, body := range map[string]string{
		"no subject":       `{}`,
		"long subject":     fmt.Sprintf(`{"subject":%q}`, strings.Repeat("a", 257)),
		"data not object":  `{"subject":"a","data":[1]}`,
		"reserved claim":   `{"subject":"a","claims":{"sub":"root"}}`,
		"bad ip":           `{"subject":"a","ip":"not-an-ip"}`,
		"data too large":   fmt.Sprintf(`{"subject":"a","data":{"x":%q}}`, strings.Repeat("x", 20<<10)),
		"wrong type":       `{"subject":7}`,
		"unknown member":   `{"subject":"a","admin":true}`,
		"malformed":        `{"subject":`,
		"trailing data":    `{"subject":"a"} {}`,
		"not an object":    `["subject"]`,
		"control chars":    `{"subject":"a\u0000b"}`,
		"null body object": `null`,
	} {
		t.Run(name, func(t *testing.T) {
			r := h.api("POST", "/v1/sessions", body)
			wantProblem(t, r, 400, CodeBadRequest)
		})
	}
}

func TestBodyLimitsAndContentType(t *testing.T) {
	h := newHarness(t)
	big := `{"subject":"a","data":{"x":"` + strings.Repeat("x", MaxBodySize) + `"}}`
	wantProblem(t, h.api("POST", "/v1/sessions", big), 413, CodeTooLarge)

	// Without a Content-Length (chunked), the limit holds while reading.
	r, _ := http.NewRequest("POST", h.ts.URL+"/v1/sessions", io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := h.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantProblem(t, &response{status: resp.StatusCode, header: resp.Header, body: b}, 413, CodeTooLarge)

	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"} {
		r := h.do(req{method: "POST", path: "/v1/sessions", body: `{"subject":"a"}`, apiKey: true, header: map[string]string{"Content-Type": ct}})
		if ct == "" {
			// net/http sends no header for an empty value.
			r = h.doRaw("POST", "/v1/sessions", `{"subject":"a"}`, "")
		}
		wantProblem(t, r, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType)
	}
	r2 := h.do(req{method: "POST", path: "/v1/sessions", body: `{"subject":"a"}`, apiKey: true, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}})
	wantStatus(t, r2, 201)
	// An empty body where one is required.
	wantProblem(t, h.api("POST", "/v1/sessions", ""), 400, CodeBadRequest)
}

// doRaw sends a request without a Content-Type header.
func (h *harness) doRaw(method, path, body, ct string) *response {
	h.t.Helper()
	r, _ := http.NewRequest(method, h.ts.URL+path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+testAPIKey)
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	resp, err := h.client.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestAPIKey(t *testing.T) {
	h := newHarness(t)
	routes := []struct{ method, path string }{
		{"POST", "/v1/sessions"}, {"POST", "/v1/sessions/verify"}, {"GET", "/v1/sessions/ses_x"},
		{"PATCH", "/v1/sessions/ses_x"}, {"DELETE", "/v1/sessions/ses_x"}, {"POST", "/v1/sessions/ses_x/renew"},
		{"GET", "/v1/subjects/alice/sessions"}, {"DELETE", "/v1/subjects/alice/sessions"},
		{"GET", "/v1/keys"}, {"POST", "/v1/keys/rotate"},
	}
	for _, rt := range routes {
		for name, auth := range map[string]string{
			"none":       "",
			"wrong":      "Bearer " + strings.Repeat("x", len(testAPIKey)),
			"prefix":     "Bearer " + testAPIKey[:len(testAPIKey)-1],
			"longer":     "Bearer " + testAPIKey + "x",
			"basic":      "Basic " + testAPIKey,
			"bare":       testAPIKey,
			"empty bear": "Bearer ",
		} {
			hdr := map[string]string{}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			r := h.do(req{method: rt.method, path: rt.path, body: `{}`, header: hdr})
			if r.status != 401 {
				t.Errorf("%s %s with %s key: status %d", rt.method, rt.path, name, r.status)
				continue
			}
			wantProblem(t, r, 401, CodeUnauthorized)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("no WWW-Authenticate challenge")
			}
		}
	}
	// The scheme is case-insensitive.
	r := h.do(req{method: "GET", path: "/v1/keys", header: map[string]string{"Authorization": "bearer " + testAPIKey}})
	wantStatus(t, r, 200)
}

func TestShortAPIKeyRefused(t *testing.T) {
	_, err := New(context.Background(), Options{Store: memstore.New(), APIKey: strings.Repeat("k", MinAPIKeyLen-1), KEK: make([]byte, 32)})
	if !errors.Is(err, ErrWeakAPIKey) {
		t.Fatalf("New with a short key: %v, want ErrWeakAPIKey", err)
	}
	if !strings.Contains(err.Error(), "openssl rand") {
		t.Errorf("the error does not say how to make a key: %v", err)
	}
	if _, err := New(context.Background(), Options{Store: memstore.New(), APIKey: testAPIKey}); err == nil {
		t.Error("New accepted a keyring store without a KEK")
	}
}

func TestBadIDs(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"nope", "ses_", "ses_!!!!", "lts_AAAA", url.PathEscape("ses_a/b"), strings.Repeat("a", 300)} {
		for _, m := range []string{"GET", "DELETE", "PATCH"} {
			body := ""
			if m == "PATCH" {
				body = `{"data":{}}`
			}
			wantProblem(t, h.api(m, "/v1/sessions/"+id, body), 400, CodeBadRequest)
		}
		wantProblem(t, h.api("POST", "/v1/sessions/"+id+"/renew", ""), 400, CodeBadRequest)
	}
	// A well-formed ID of no session.
	c := h.create("alice", "")
	h.api("DELETE", "/v1/sessions/"+c.id, "")
	wantProblem(t, h.api("GET", "/v1/sessions/"+c.id, ""), 404, CodeNotFound)
	wantProblem(t, h.api("PATCH", "/v1/sessions/"+c.id, `{"data":{}}`), 404, CodeNotFound)
	wantProblem(t, h.api("POST", "/v1/sessions/"+c.id+"/renew", ""), 404, CodeNotFound)
}

func TestPatchMergeAndIfMatch(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", `,"data":{"a":1,"b":{"c":2,"d":3},"big":12345678901234567890}`)
	path := "/v1/sessions/" + c.id

	r := h.do(req{method: "PATCH", path: path, apiKey: true, body: `{"data":{"a":null,"b":{"c":9},"e":"x"}}`, header: map[string]string{"If-Match": `"1"`}})
	wantStatus(t, r, 200)
	if r.header.Get("ETag") != `"2"` {
		t.Errorf("ETag after PATCH = %q", r.header.Get("ETag"))
	}
	d, _ := json.Marshal(r.json(t)["session"].(map[string]any)["data"])
	var got, want any
	json.Unmarshal(d, &got)
	json.Unmarshal([]byte(`{"b":{"c":9,"d":3},"big":12345678901234567890,"e":"x"}`), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("merged data = %s", d)
	}
	if !strings.Contains(string(r.body), "12345678901234567890") {
		t.Errorf("a large number lost precision: %s", r.body)
	}

	// A stale If-Match is 412 conflict and changes nothing.
	r = h.do(req{method: "PATCH", path: path, apiKey: true, body: `{"data":{"z":1}}`, header: map[string]string{"If-Match": `"1"`}})
	wantProblem(t, r, http.StatusPreconditionFailed, CodeConflict)
	r = h.do(req{method: "PATCH", path: path, apiKey: true, body: `{"data":{"z":1}}`, header: map[string]string{"If-Match": `W/"x"`}})
	wantProblem(t, r, http.StatusPreconditionFailed, CodeConflict)
	r = h.api("GET", path, "")
	if r.header.Get("ETag") != `"2"` || strings.Contains(string(r.body), `"z"`) {
		t.Errorf("a failed PATCH changed the session: %s", r.body)
	}

	// Without If-Match, and with application/merge-patch+json.
	r = h.do(req{method: "PATCH", path: path, apiKey: true, body: `{"data":{"z":1}}`, header: map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": "*"}})
	wantStatus(t, r, 200)
	// Bad patches.
	wantProblem(t, h.api("PATCH", path, `{"data":[1]}`), 400, CodeBadRequest)
	wantProblem(t, h.api("PATCH", path, `{}`), 400, CodeBadRequest)
	wantProblem(t, h.api("PATCH", path, `{"data":{},"claims":{}}`), 400, CodeBadRequest)
	// null removes all data.
	r = h.api("PATCH", path, `{"data":null}`)
	wantStatus(t, r, 200)
	if d, _ := json.Marshal(r.json(t)["session"].(map[string]any)["data"]); string(d) != "{}" {
		t.Errorf("data after null patch = %s", d)
	}
}

func TestMergePatchRFC7396(t *testing.T) {
	// The examples of RFC 7396 appendix A whose target and result are objects.
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b"}`, `null`, `null`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{``, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		got, err := mergePatch(json.RawMessage(tc.target), json.RawMessage(tc.patch))
		if err != nil {
			t.Errorf("mergePatch(%s, %s): %v", tc.target, tc.patch, err)
			continue
		}
		if tc.want == "null" {
			if got != nil {
				t.Errorf("mergePatch(%s, %s) = %s, want nil", tc.target, tc.patch, got)
			}
			continue
		}
		if strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("mergePatch(%s, %s) = %s, want %s", tc.target, tc.patch, got, tc.want)
		}
	}
	if _, err := mergePatch(nil, json.RawMessage(`"x"`)); err == nil {
		t.Error("a non-object patch of object data was accepted")
	}
}

func TestDeleteRenewRevoked(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", `,"claims":{"role":"user"}`)

	// Renew: new tokens, same ID, old ones dead at once.
	r := h.api("POST", "/v1/sessions/"+c.id+"/renew", `{"claims":{"role":"admin"}}`)
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["session"].(map[string]any)["id"] != c.id || m["session_token"] == c.sessionToken || m["token_type"] != "Bearer" {
		t.Fatalf("renew answer: %s", r.body)
	}
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), 401, CodeInvalidToken)
	wantProblem(t, h.api("POST", "/v1/refresh", fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)), 401, CodeInvalidToken)
	newTok := m["session_token"].(string)
	wantStatus(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, newTok)), 200)
	// Renew without a body works too.
	wantStatus(t, h.api("POST", "/v1/sessions/"+c.id+"/renew", ""), 200)

	// DELETE is 204, also when the session is already gone.
	r = h.api("DELETE", "/v1/sessions/"+c.id, "")
	wantStatus(t, r, 204)
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %q", r.body)
	}
	wantStatus(t, h.api("DELETE", "/v1/sessions/"+c.id, ""), 204)
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken)), 401, CodeRevoked)
}

func TestReplaceSessionToken(t *testing.T) {
	h := newHarness(t)
	old := h.create("alice", "")
	h.create("alice", fmt.Sprintf(`,"replace_session_token":%q`, old.sessionToken))
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, old.sessionToken)), 401, CodeRevoked)
}

func TestSubjects(t *testing.T) {
	h := newHarness(t)
	a1 := h.create("alice@example.com", "")
	h.clock.Advance(time.Second)
	a2 := h.create("alice@example.com", "")
	h.clock.Advance(time.Second)
	a3 := h.create("alice@example.com", "")
	bob := h.create("bob", "")
	h.clock.Advance(2 * time.Minute)
	// Touch a1: it becomes the most recently seen.
	wantStatus(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, a1.sessionToken)), 200)

	list := func(subject string) []string {
		r := h.api("GET", "/v1/subjects/"+url.PathEscape(subject)+"/sessions", "")
		wantStatus(t, r, 200)
		var out struct {
			Sessions []struct{ ID string } `json:"sessions"`
		}
		json.Unmarshal(r.body, &out)
		if out.Sessions == nil {
			t.Fatalf("sessions is not an array: %s", r.body)
		}
		var ids []string
		for _, s := range out.Sessions {
			ids = append(ids, s.ID)
		}
		return ids
	}
	if got, want := list("alice@example.com"), []string{a1.id, a3.id, a2.id}; !slices.Equal(got, want) {
		t.Errorf("list = %v, want most recent first %v", got, want)
	}
	if got := list("nobody"); len(got) != 0 {
		t.Errorf("list of an unknown subject = %v", got)
	}
	wantProblem(t, h.api("GET", "/v1/subjects/"+strings.Repeat("a", 300)+"/sessions", ""), 400, CodeBadRequest)

	// Revoke all but a3.
	r := h.api("DELETE", "/v1/subjects/alice@example.com/sessions?except="+a3.id, "")
	wantStatus(t, r, 200)
	if string(r.body) != `{"revoked":2}`+"\n" {
		t.Errorf("revoke-subject answer %s", r.body)
	}
	if got := list("alice@example.com"); !slices.Equal(got, []string{a3.id}) {
		t.Errorf("after revoke-subject: %v", got)
	}
	if got := list("bob"); !slices.Equal(got, []string{bob.id}) {
		t.Errorf("bob's sessions were touched: %v", got)
	}
	wantProblem(t, h.api("DELETE", "/v1/subjects/alice@example.com/sessions?except=garbage", ""), 400, CodeBadRequest)
	wantProblem(t, h.api("DELETE", "/v1/subjects/alice@example.com/sessions?all=1", ""), 400, CodeBadRequest)
	r = h.api("DELETE", "/v1/subjects/alice@example.com/sessions", "")
	wantStatus(t, r, 200)
	if string(r.body) != `{"revoked":1}`+"\n" {
		t.Errorf("revoke-subject answer %s", r.body)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RefreshGrace = 5 * time.Second })
	c := h.create("alice", "")
	refresh := func(tok string) *response {
		return h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, tok)})
	}
	r := refresh(c.refreshToken)
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(600) || m["refresh_token"] == c.refreshToken {
		t.Fatalf("refresh answer: %s", r.body)
	}
	// Within the grace window the same parent yields the same successor.
	r2 := refresh(c.refreshToken)
	wantStatus(t, r2, 200)
	if r2.json(t)["refresh_token"] != m["refresh_token"] || r2.json(t)["access_token"] != m["access_token"] {
		t.Error("a refresh within the grace window gave a different successor")
	}
	// After it, the rotated token is theft: refresh_reuse, and the session is revoked.
	h.clock.Advance(6 * time.Second)
	wantProblem(t, refresh(c.refreshToken), 401, CodeRefreshReuse)
	wantProblem(t, refresh(m["refresh_token"].(string)), 401, CodeRevoked)
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), 401, CodeRevoked)

	// Bad input.
	wantProblem(t, refresh("ltr_garbage"), 401, CodeInvalidToken)
	wantProblem(t, refresh(c.sessionToken), 401, CodeInvalidToken)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: `{}`}), 400, CodeBadRequest)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: `{"refresh_token":1}`}), 400, CodeBadRequest)
}

func TestExpired(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	h.clock.Advance(11 * time.Minute)
	// The access token (10 min) has expired, the session (30 min idle) not.
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken)), 401, CodeExpired)
	r := h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Bearer " + c.accessToken}})
	wantProblem(t, r, 401, CodeExpired)
	h.clock.Advance(30 * time.Minute)
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), 401, CodeExpired)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)}), 401, CodeExpired)
	wantProblem(t, h.api("GET", "/v1/sessions/"+c.id, ""), 404, CodeNotFound)
}

func TestStoreUnavailable(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	wantStatus(t, h.do(req{method: "GET", path: "/readyz"}), 200)

	h.store.down.Store(true)
	for _, rq := range []req{
		{method: "POST", path: "/v1/sessions", body: `{"subject":"a"}`, apiKey: true},
		{method: "POST", path: "/v1/sessions/verify", body: fmt.Sprintf(`{"session_token":%q}`, c.sessionToken), apiKey: true},
		{method: "POST", path: "/v1/sessions/verify", body: fmt.Sprintf(`{"access_token":%q}`, c.accessToken), apiKey: true},
		{method: "GET", path: "/v1/sessions/" + c.id, apiKey: true},
		{method: "PATCH", path: "/v1/sessions/" + c.id, body: `{"data":{}}`, apiKey: true},
		{method: "DELETE", path: "/v1/sessions/" + c.id, apiKey: true},
		{method: "POST", path: "/v1/sessions/" + c.id + "/renew", apiKey: true},
		{method: "GET", path: "/v1/subjects/alice/sessions", apiKey: true},
		{method: "DELETE", path: "/v1/subjects/alice/sessions", apiKey: true},
		{method: "GET", path: "/v1/keys", apiKey: true},
		{method: "POST", path: "/v1/keys/rotate", apiKey: true},
		{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)},
		{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Bearer " + c.accessToken}},
		{method: "GET", path: "/readyz"},
	} {
		r := h.do(rq)
		if r.status != 503 {
			t.Errorf("%s %s with the store down: %d %s", rq.method, rq.path, r.status, r.body)
			continue
		}
		wantProblem(t, r, 503, CodeStoreUnavailable)
	}
	wantStatus(t, h.do(req{method: "GET", path: "/healthz"}), 200)

	h.store.down.Store(false)
	wantStatus(t, h.do(req{method: "GET", path: "/readyz"}), 200)
	wantStatus(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), 200)
}

func TestWhoamiAndLogout(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	cookie := map[string]string{"Cookie": DefaultCookieName + "=" + c.sessionToken}

	// Bearer: no CSRF token.
	r := h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Bearer " + c.accessToken}})
	wantStatus(t, r, 200)
	if _, ok := r.json(t)["csrf_token"]; ok {
		t.Error("whoami by Bearer returned a CSRF token")
	}
	// Cookie: a CSRF token.
	r = h.do(req{method: "GET", path: "/v1/whoami", header: cookie})
	wantStatus(t, r, 200)
	csrf, _ := r.json(t)["csrf_token"].(string)
	if csrf == "" {
		t.Fatal("whoami by cookie returned no CSRF token")
	}
	// Unauthenticated, or with a wrong credential.
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami"}), 401, CodeUnauthorized)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Basic abc"}}), 401, CodeInvalidToken)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Bearer " + c.sessionToken}}), 401, CodeInvalidToken)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami", header: map[string]string{"Cookie": DefaultCookieName + "=lts_bogus"}}), 401, CodeInvalidToken)

	// Cookie logout needs the CSRF token and a same-origin request.
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: cookie}), 403, CodeCSRF)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{
		"Cookie": cookie["Cookie"], "X-CSRF-Token": "AAAA"}}), 403, CodeCSRF)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{
		"Cookie": cookie["Cookie"], "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}}), 403, CodeCSRF)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{
		"Cookie": cookie["Cookie"], "X-CSRF-Token": csrf, "Origin": "https://evil.example"}}), 403, CodeCSRF)
	wantStatus(t, h.do(req{method: "GET", path: "/v1/whoami", header: cookie}), 200) // still signed in

	r = h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{
		"Cookie": cookie["Cookie"], "X-CSRF-Token": csrf, "Sec-Fetch-Site": "same-origin"}})
	wantStatus(t, r, 204)
	sc := r.header.Get("Set-Cookie")
	for _, want := range []string{DefaultCookieName + "=;", "Path=/", "Max-Age=0", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("logout Set-Cookie %q lacks %q", sc, want)
		}
	}
	if r.header.Get("Clear-Site-Data") != `"cookies"` {
		t.Errorf("Clear-Site-Data = %q", r.header.Get("Clear-Site-Data"))
	}
	wantProblem(t, h.do(req{method: "GET", path: "/v1/whoami", header: cookie}), 401, CodeRevoked)
	// Logging out again is harmless.
	wantStatus(t, h.do(req{method: "POST", path: "/v1/logout", header: cookie}), 204)

	// Bearer logout.
	c2 := h.create("bob", "")
	wantStatus(t, h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{"Authorization": "Bearer " + c2.accessToken}}), 204)
	wantProblem(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c2.sessionToken)), 401, CodeRevoked)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{"Authorization": "Bearer nope"}}), 401, CodeInvalidToken)
	wantProblem(t, h.do(req{method: "POST", path: "/v1/logout"}), 401, CodeUnauthorized)

	if !strings.Contains(h.logs.String(), string(latch.EventCSRFRejected)) {
		t.Error("CSRF rejections were not logged as events")
	}
}

func TestJWKSAndKeys(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	r := h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	wantStatus(t, r, 200)
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=600") {
		t.Errorf("JWKS Cache-Control = %q", cc)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("JWKS = %s", r.body)
	}
	if _, ok := jwks.Keys[0]["d"]; ok {
		t.Fatal("the JWKS publishes a private key")
	}
	kid := jwks.Keys[0]["kid"].(string)
	hdr, _, _ := strings.Cut(c.accessToken, ".")
	if !strings.Contains(decodeSegment(t, hdr), kid) {
		t.Error("the access token is not signed by the published key")
	}

	r = h.api("POST", "/v1/keys/rotate", "")
	wantStatus(t, r, 200)
	newKid, _ := r.json(t)["kid"].(string)
	if newKid == "" || newKid == kid {
		t.Fatalf("rotate answer %s", r.body)
	}
	r = h.api("GET", "/v1/keys", "")
	wantStatus(t, r, 200)
	var keys struct {
		Keys []struct{ Kid, State string } `json:"keys"`
	}
	json.Unmarshal(r.body, &keys)
	if len(keys.Keys) != 2 || keys.Keys[0].State != "active" || keys.Keys[1].Kid != newKid || keys.Keys[1].State != "pending" {
		t.Errorf("keys after rotate: %s", r.body)
	}
	// The new key is published before it signs.
	r = h.do(req{method: "GET", path: "/.well-known/jwks.json"})
	if !strings.Contains(string(r.body), newKid) {
		t.Error("the rotated key is not published")
	}
	wantProblem(t, h.api("POST", "/v1/keys/rotate", `{"x":1}`), 400, CodeBadRequest)
}

func TestRoutingProblems(t *testing.T) {
	h := newHarness(t)
	r := h.api("PUT", "/v1/sessions/ses_x", `{}`)
	wantProblem(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	if r.header.Get("Allow") != "DELETE, GET, HEAD, PATCH" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	wantProblem(t, h.do(req{method: "POST", path: "/healthz"}), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	wantProblem(t, h.api("GET", "/v1/nothing", ""), 404, CodeNotFound)
	wantProblem(t, h.do(req{method: "GET", path: "/"}), 404, CodeNotFound)

	// Mounted handlers get everything else.
	h.srv.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "demo") }))
	r = h.do(req{method: "GET", path: "/"})
	if r.status != 200 || string(r.body) != "demo" {
		t.Errorf("mounted handler: %d %q", r.status, r.body)
	}
	wantProblem(t, h.api("GET", "/v1/nothing", ""), 404, CodeNotFound)
	wantStatus(t, h.do(req{method: "GET", path: "/healthz"}), 200)
}

func TestPanicRecovered(t *testing.T) {
	h := newHarness(t)
	h.srv.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom: lts_secretvalue")
	}))
	r := h.do(req{method: "GET", path: "/panic"})
	wantProblem(t, r, 500, CodeInternal)
	if strings.Contains(string(r.body), "goroutine") || strings.Contains(string(r.body), "boom") {
		t.Errorf("the panic reached the client: %s", r.body)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "panic serving request") {
		t.Error("the panic was not logged")
	}
	if strings.Contains(logs, "lts_secretvalue") {
		t.Error("the panic value was logged")
	}
	// The server still serves.
	wantStatus(t, h.do(req{method: "GET", path: "/healthz"}), 200)
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken))
	h.api("POST", "/v1/sessions/verify", `{"session_token":"lts_nope"}`)
	h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken))
	r := h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)})
	h.clock.Advance(time.Minute)
	h.do(req{method: "POST", path: "/v1/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, c.refreshToken)}) // reuse
	_ = r
	d := h.create("bob", "")
	h.api("DELETE", "/v1/sessions/"+d.id, "")
	h.do(req{method: "POST", path: "/v1/logout", header: map[string]string{"Cookie": DefaultCookieName + "=" + h.create("carol", "").sessionToken}})

	r = h.do(req{method: "GET", path: "/metrics"})
	wantStatus(t, r, 200)
	body := string(r.body)
	for _, want := range []string{
		`latch_validations_total{carrier="session",result="ok"} 1`,
		`latch_validations_total{carrier="session",result="invalid_token"} 1`,
		`latch_validations_total{carrier="access",result="ok"} 1`,
		`latch_refreshes_total{result="ok"} 1`,
		`latch_refreshes_total{result="refresh_reuse"} 1`,
		`latch_revocations_total{reason="admin"} 1`,
		`latch_revocations_total{reason="refresh-reuse"} 1`,
		`latch_refresh_reuse_detections_total 1`,
		`latch_csrf_rejections_total 1`,
		`latch_sessions_created_total 3`,
		`latch_store_operation_duration_seconds_count{operation="create",result="ok"} 3`,
		`latch_store_operation_duration_seconds_count{operation="rotate_refresh",result="ok"} 1`,
		`latch_http_request_duration_seconds_count{code="201",route="POST /v1/sessions"} 3`,
		`latch_http_request_duration_seconds_count{code="401",route="POST /v1/sessions/verify"} 1`,
		`latch_http_request_duration_seconds_count{code="200",route="POST /v1/sessions/verify"} 2`,
		`latch_http_request_duration_seconds_count{code="204",route="DELETE /v1/sessions/{id}"} 1`,
		`latch_store_operation_duration_seconds_count{operation="get",result="ok"} `,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// plainStore implements only store.Store.
type plainStore struct{ store.Store }

func TestInstrumentForwardsCapabilities(t *testing.T) {
	m := newMetrics()
	full := instrument(memstore.New(), m)
	if _, ok := full.(store.Sweeper); !ok {
		t.Error("Sweeper not forwarded")
	}
	if _, ok := full.(store.Pinger); !ok {
		t.Error("Pinger not forwarded")
	}
	if _, ok := full.(store.KeyStore); !ok {
		t.Error("KeyStore not forwarded")
	}
	bare := instrument(plainStore{memstore.New()}, m)
	_, sw := bare.(store.Sweeper)
	_, pi := bare.(store.Pinger)
	_, ks := bare.(store.KeyStore)
	if sw || pi || ks {
		t.Errorf("capabilities invented: sweeper %v pinger %v keystore %v", sw, pi, ks)
	}
	// A server on a store without KeyStore keeps keys in memory.
	h := newHarness(t, func(o *Options) { o.Store = plainStore{memstore.New()} })
	h.create("alice", "")
}

func TestGracefulShutdownDrains(t *testing.T) {
	h := newHarness(t)
	entered, release := make(chan struct{}), make(chan struct{})
	h.srv.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := h.srv.HTTPServer()
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout == 0 || hs.IdleTimeout == 0 || hs.MaxHeaderBytes == 0 {
		t.Errorf("server limits not set: %+v", hs)
	}
	shuttingDown := make(chan struct{})
	hs.RegisterOnShutdown(func() { close(shuttingDown) })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, hs, ln, "", "", time.Minute) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-entered
	cancel()
	<-shuttingDown
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SweepInterval = time.Millisecond; o.KeyMaintenanceInterval = time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.Run(ctx); close(done) }()
	h.create("alice", "")
	cancel()
	<-done
}

func decodeSegment(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Verifying by access token records activity like a session token does, so
// an API client's session does not idle out while its tokens are in use.
func TestVerifyAccessTokenTouches(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	h.clock.Advance(2 * time.Minute)
	r := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q,"ip":"198.51.100.4"}`, c.accessToken))
	wantStatus(t, r, 200)
	s := r.json(t)["session"].(map[string]any)
	if s["last_seen_at"] != "2030-01-02T03:06:05Z" || s["ip"] != "198.51.100.4" {
		t.Fatalf("access-token verify did not record activity: %v", s)
	}
	h.api("DELETE", "/v1/sessions/"+c.id, "")
	r = h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, c.accessToken))
	wantProblem(t, r, 401, "revoked")
}

// Every known path answers a method it does not take with 405
// method_not_allowed and an Allow header naming the ones it does, even
// where a wildcard route of that method would match the path
// (GET /v1/sessions/verify is not "a session with ID verify").
func TestMethodNotAllowedEverywhere(t *testing.T) {
	h := newHarness(t)
	allow := map[string][]string{}
	for _, rt := range h.srv.Routes() {
		m, p, _ := strings.Cut(rt, " ")
		allow[p] = append(allow[p], m)
		if m == "GET" {
			allow[p] = append(allow[p], "HEAD")
		}
	}
	param := strings.NewReplacer("{id}", "ses_AAAAAAAAAAAAAAAAAAAAAA", "{subject}", "alice", "{kid}", "k1")
	for path, ms := range allow {
		slices.Sort(ms)
		want := strings.Join(ms, ", ")
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if slices.Contains(ms, m) {
				continue
			}
			r := h.do(req{method: m, path: param.Replace(path), apiKey: true})
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != want {
				t.Errorf("%s %s: status %d, Allow %q; want 405 with Allow %q (body %s)", m, path, r.status, r.header.Get("Allow"), want, r.body)
				continue
			}
			if m != "HEAD" {
				wantProblem(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			}
		}
	}
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		r := h.api(m, "/v1/sessions/verify", `{"data":{}}`)
		wantProblem(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
		if r.header.Get("Allow") != "POST" {
			t.Errorf("%s /v1/sessions/verify: Allow = %q, want POST", m, r.header.Get("Allow"))
		}
	}
}

// A request written on an idle keep-alive connection just after shutdown
// began is still answered, with Connection: close, instead of being cut off
// unread (a client cannot tell whether a cut-off POST took effect).
func TestShutdownAnswersRequestsOnIdleConnections(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, h.srv.HTTPServer(), ln, "", "", time.Minute) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() (*http.Response, error) {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: latch.test\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get(); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("before shutdown: %v, %v (want 200 on a kept-alive connection)", resp, err)
	}
	cancel() // the connection is idle now
	time.Sleep(LameDuck / 5)
	resp, err := get()
	if err != nil {
		t.Fatalf("a request on an idle connection right after shutdown began was cut off: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("during the drain: status %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// freshCounting counts reads past a (pretend) cache.
type freshCounting struct {
	store.Store
	fresh int
}

func (f *freshCounting) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	f.fresh++
	return f.Store.Get(ctx, id)
}

// The manager's re-read before refusing a token (store.GetFresh) must reach
// the store under the metrics wrapper, or a caching store's replica would
// refuse a token rotated through another one a moment ago.
func TestInstrumentForwardsGetFresh(t *testing.T) {
	inner := &freshCounting{Store: memstore.New()}
	s := instrument(inner, newMetrics())
	id, err := store.NewID("alice", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetFresh(context.Background(), s, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetFresh of a missing record: %v", err)
	}
	if inner.fresh != 1 {
		t.Fatalf("inner GetFresh called %d times, want 1", inner.fresh)
	}
}

// keyStoreCounting is a key store that counts keyring reads, with or
// without a version read of its own.
type keyStoreCounting struct {
	*memstore.Store
	loads, versions int
}

func (k *keyStoreCounting) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	k.loads++
	return k.Store.LoadKeyring(ctx)
}

type versionCounting struct{ *keyStoreCounting }

func (v versionCounting) KeyringVersion(ctx context.Context) (uint64, error) {
	v.versions++
	return v.Store.KeyringVersion(ctx)
}

// The keyring's check on every access-token verification must stay a
// version read under the metrics wrapper, not a read of the whole keyring.
func TestInstrumentForwardsKeyringVersion(t *testing.T) {
	ctx := context.Background()
	inner := &keyStoreCounting{Store: memstore.New()}
	if err := inner.SaveKeyring(ctx, []byte("blob"), 0); err != nil {
		t.Fatal(err)
	}
	s := instrument(struct {
		store.Store
		store.KeyStore
		store.KeyringVersioner
	}{inner, inner, versionCounting{inner}}, newMetrics())
	kv, ok := s.(store.KeyringVersioner)
	if !ok {
		t.Fatal("KeyringVersioner not forwarded")
	}
	if v, err := kv.KeyringVersion(ctx); v != 1 || err != nil || inner.versions != 1 || inner.loads != 0 {
		t.Fatalf("KeyringVersion = %d, %v; %d version reads, %d loads; want 1, nil, 1, 0", v, err, inner.versions, inner.loads)
	}
	// A key store without a version read of its own: its LoadKeyring's.
	plain := &keyStoreCounting{Store: memstore.New()}
	s = instrument(struct {
		store.Store
		store.KeyStore
	}{plain, plain}, newMetrics())
	if v, err := s.(store.KeyringVersioner).KeyringVersion(ctx); v != 0 || err != nil || plain.loads != 1 {
		t.Fatalf("KeyringVersion without a versioner = %d, %v after %d loads; want 0, nil, 1", v, err, plain.loads)
	}
}
