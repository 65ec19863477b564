package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Renew's auth_time is a re-authentication within the session: not before
// the session was created, not in the future beyond the clock-skew leeway
// (and within it, recorded as now). A refused renew changes nothing.
func TestRenewAuthTime(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	created := h.clock.Now()
	h.clock.Advance(10 * time.Minute)
	now := h.clock.Now()
	renew := func(at string) *response {
		t.Helper()
		return h.api("POST", "/v1/sessions/"+c.id+"/renew", fmt.Sprintf(`{"auth_time":%q}`, at))
	}
	for name, at := range map[string]time.Time{
		"31 s ahead":           now.Add(31 * time.Second),
		"a year ahead":         now.AddDate(1, 0, 0),
		"before creation":      created.Add(-time.Second),
		"centuries ago":        time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC),
		"the zero time's year": time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
	} {
		r := renew(at.Format(time.RFC3339Nano))
		wantProblem(t, r, http.StatusBadRequest, CodeBadRequest)
		if m := r.json(t); m["detail"] == nil || !strings.Contains(m["detail"].(string), "auth_time") {
			t.Errorf("%s: detail does not name auth_time: %s", name, r.body)
		}
	}
	for _, bad := range []string{`{"auth_time":"yesterday"}`, `{"auth_time":1700000000}`, `{"auth_time":"2030-01-02 03:14:05"}`} {
		wantProblem(t, h.api("POST", "/v1/sessions/"+c.id+"/renew", bad), http.StatusBadRequest, CodeBadRequest)
	}
	// Nothing changed: the original token still works, version 1.
	v := h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken))
	wantStatus(t, v, http.StatusOK)
	if s := v.json(t)["session"].(map[string]any); s["auth_time"] != "2030-01-02T03:04:05Z" {
		t.Errorf("a refused renew changed auth_time: %v", s["auth_time"])
	}

	for at, want := range map[time.Time]string{
		created:                    "2030-01-02T03:04:05Z", // the session's own creation
		now.Add(-time.Minute):      "2030-01-02T03:13:05Z",
		now.Add(20 * time.Second):  "2030-01-02T03:14:05Z", // within the leeway: recorded as now
		now.Add(-90 * time.Second): "2030-01-02T03:12:35Z",
	} {
		r := renew(at.Format(time.RFC3339Nano))
		wantStatus(t, r, http.StatusOK)
		if got := r.json(t)["session"].(map[string]any)["auth_time"]; got != want {
			t.Errorf("auth_time %v recorded as %v, want %s", at, got, want)
		}
	}
}

// A null body is refused like [] and like any other non-object, also
// where the body is optional; an empty body is still "no options".
func TestNullBodyRefusedLikeArray(t *testing.T) {
	h := newHarness(t)
	c := h.create("alice", "")
	for _, path := range []string{"/v1/sessions/" + c.id + "/renew", "/v1/keys/rotate", "/v1/sessions", "/v1/sessions/verify", "/v1/refresh"} {
		for _, body := range []string{`null`, ` null `, `[]`, `"x"`, `7`, `true`} {
			r := h.api("POST", path, body)
			wantProblem(t, r, http.StatusBadRequest, CodeBadRequest)
			if d := r.json(t)["detail"]; d != "the request body must be a JSON object" {
				t.Errorf("POST %s %s: detail %v", path, body, d)
			}
		}
	}
	for _, body := range []string{`null`, `[]`} {
		wantProblem(t, h.do(req{method: "POST", path: "/v1/logout", body: body,
			header: map[string]string{"Authorization": "Bearer " + c.accessToken}}), http.StatusBadRequest, CodeBadRequest)
	}
	// The session is untouched by all of that; an empty renew body works.
	wantStatus(t, h.api("POST", "/v1/sessions/verify", fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)), http.StatusOK)
	wantStatus(t, h.api("POST", "/v1/sessions/"+c.id+"/renew", ""), http.StatusOK)
}
