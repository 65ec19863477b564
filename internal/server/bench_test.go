package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store/memstore"
)

// benchServer is a Server on a memory store with the request log at Warn
// (what an operator running a load test would pick).
func benchServer(b testing.TB) (*Server, *latch.Issued) {
	b.Helper()
	srv, err := New(context.Background(), Options{
		Store:  memstore.New(),
		APIKey: testAPIKey,
		KEK:    bytes.Repeat([]byte{7}, 32),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		b.Fatal(err)
	}
	is, err := srv.Manager().Create(context.Background(), latch.NewSession{Subject: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	return srv, is
}

// BenchmarkVerifySessionToken measures POST /v1/sessions/verify with a
// session token through the whole handler chain (no network).
func BenchmarkVerifySessionToken(b *testing.B) {
	benchVerifyWith(b, func(is *latch.Issued) string {
		return fmt.Sprintf(`{"session_token":%q}`, is.SessionToken.Reveal())
	})
}

// BenchmarkVerifyAccessToken is the same with an access token.
func BenchmarkVerifyAccessToken(b *testing.B) {
	benchVerifyWith(b, func(is *latch.Issued) string {
		return fmt.Sprintf(`{"access_token":%q}`, is.AccessToken.Reveal())
	})
}

func benchVerifyWith(b *testing.B, body func(*latch.Issued) string) {
	srv, is := benchServer(b)
	h := srv.Handler()
	payload := body(is)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "/v1/sessions/verify", strings.NewReader(payload))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+testAPIKey)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
