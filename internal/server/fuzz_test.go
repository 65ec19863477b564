package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/store/memstore"
)

// FuzzRequestBodies sends arbitrary bodies and content types to every
// endpoint that reads a JSON body: no panic, never a 5xx (the store is
// healthy), and every refusal a problem document.
func FuzzRequestBodies(f *testing.F) {
	srv, err := New(context.Background(), Options{
		Store:  memstore.New(),
		APIKey: testAPIKey,
		KEK:    bytes.Repeat([]byte{7}, 32),
		Issuer: "https://latch.test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	routes := []string{
		"POST /v1/sessions", "POST /v1/sessions/verify", "PATCH /v1/sessions/ses_AAECAwQFBgcICQoLDA0ODxAR",
		"POST /v1/sessions/ses_AAECAwQFBgcICQoLDA0ODxAR/renew", "DELETE /v1/subjects/alice/sessions",
		"POST /v1/refresh", "POST /v1/logout", "POST /v1/keys/rotate",
	}
	for i, body := range []string{
		`{"subject":"alice"}`, `{"subject":"alice","data":{"a":1},"claims":{"role":"x"},"acr":"urn:x","amr":["pwd"]}`,
		`{"session_token":"lts_x"}`, `{"data":null}`, `{"refresh_token":"ltr_x"}`, `{}`, `null`, `[]`, `{"a":1}{}`,
		`{"subject":"` + strings.Repeat("a", 300) + `"}`, "\xff", `{"subject":1e999}`,
	} {
		f.Add(uint8(i), body, "application/json")
	}
	f.Add(uint8(2), `{"data":{"a":null}}`, "application/merge-patch+json")
	f.Fuzz(func(t *testing.T, route uint8, body, ctype string) {
		method, path, _ := strings.Cut(routes[int(route)%len(routes)], " ")
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+testAPIKey)
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", method, path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%s %s with %q: %d with Content-Type %q, want a problem document", method, path, body, w.Code, w.Header().Get("Content-Type"))
		}
		if w.Code == http.StatusOK && w.Body.Len() == 0 && method != http.MethodDelete {
			t.Fatalf("%s %s: 200 with an empty body", method, path)
		}
	})
}

// FuzzETag: If-Match and If-None-Match values from clients. parseETag
// reads only a strong "N" with N > 0 (what etag writes) and never panics;
// a list naming etag(v), strong or weak, among any other entries matches
// v, and a list of one other ETag does not.
func FuzzETag(f *testing.F) {
	for _, s := range []string{`"1"`, ` "42" `, `W/"7"`, `"0"`, `""`, `"18446744073709551616"`, `*`, `"1", W/"2"`, `"-1"`, `"+3"`} {
		f.Add(s, uint64(7))
	}
	f.Fuzz(func(t *testing.T, s string, v uint64) {
		if n, ok := parseETag(s); ok {
			q := strings.TrimSpace(s)
			if d, err := strconv.ParseUint(q[1:len(q)-1], 10, 64); n == 0 || q[0] != '"' || err != nil || d != n {
				t.Fatalf("parseETag(%q) = %d", s, n)
			}
		}
		if v == 0 {
			return
		}
		if n, ok := parseETag(etag(v)); !ok || n != v {
			t.Fatalf("parseETag(etag(%d)) = %d, %v", v, n, ok)
		}
		if !etagListMatches(s+", "+etag(v), v) || !etagListMatches("W/"+etag(v)+","+s, v) {
			t.Fatalf("a list naming version %d beside %q does not match it", v, s)
		}
		if etagListMatches(etag(v+1), v) && v+1 != 0 {
			t.Fatalf("etag(%d) matched version %d", v+1, v)
		}
	})
}
