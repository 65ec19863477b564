package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latch-sessions/latch"
)

// discardWriter is a ResponseWriter that keeps the status and nothing
// else, reused across requests so an allocation count sees the handler's
// own allocations only.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// verifyRunner returns a function that sends one POST
// /v1/sessions/verify through the whole handler chain, the request and
// writer reused so that only the handler's own work is counted, and the
// writer it answers on.
func verifyRunner(t testing.TB, body func(*latch.Issued) string) (func(), *discardWriter) {
	t.Helper()
	srv, is := benchServer(t)
	h := srv.Handler()
	payload := []byte(body(is))
	rd := bytes.NewReader(payload)
	r := httptest.NewRequest("POST", "/v1/sessions/verify", rd)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+testAPIKey)
	r.Body = io.NopCloser(rd) // allocated once: not the handler's
	w := &discardWriter{h: http.Header{}}
	run := func() {
		rd.Reset(payload)
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, r)
	}
	run()
	if w.status != http.StatusOK {
		t.Fatalf("status %d", w.status)
	}
	return run, w
}

// verifyAllocs counts the allocations of one verify through the handler
// chain.
func verifyAllocs(t *testing.T, body func(*latch.Issued) string) float64 {
	t.Helper()
	run, _ := verifyRunner(t, body)
	return testing.AllocsPerRun(200, run)
}

func sessionTokenBody(is *latch.Issued) string {
	return fmt.Sprintf(`{"session_token":%q}`, is.SessionToken.Reveal())
}

func accessTokenBody(is *latch.Issued) string {
	return fmt.Sprintf(`{"access_token":%q}`, is.AccessToken.Reveal())
}

// BenchmarkVerifyHandler times the handler chain alone (no httptest
// recorder, no network), one goroutine: the figure to profile
// (BENCHMARKS.md, issue 15).
func BenchmarkVerifyHandler(b *testing.B) {
	for _, c := range []struct {
		name string
		body func(*latch.Issued) string
	}{{"token=session", sessionTokenBody}, {"token=access", accessTokenBody}} {
		b.Run(c.name, func(b *testing.B) {
			run, w := verifyRunner(b, c.body)
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

// TestVerifyAllocs holds the verify handler to its allocation budget
// (BENCHMARKS.md, issue 15): a regression on the server's hottest path
// shows up here, not only in a benchmark on a noisy machine.
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, c := range []struct {
		name   string
		budget float64
		body   func(*latch.Issued) string
	}{
		{"session token", 4, sessionTokenBody},
		{"access token", 4, accessTokenBody},
	} {
		t.Run(c.name, func(t *testing.T) {
			if n := verifyAllocs(t, c.body); n > c.budget {
				t.Fatalf("a verify allocates %v times, budget %v", n, c.budget)
			} else {
				t.Logf("%v allocations", n)
			}
		})
	}
}
