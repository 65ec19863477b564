package latchhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// benchSetup returns the middleware around a handler that reads one value
// of the session, and a request carrying a valid session cookie.
func benchSetup(tb testing.TB) (http.Handler, *http.Request) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.ObserverFunc(func(context.Context, latch.Event) {})})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	iss, err := m.Create(context.Background(), latch.NewSession{Subject: "alice", Data: json.RawMessage(`{"user":"alice","theme":"dark"}`)})
	if err != nil {
		tb.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := latchhttp.FromContext(r.Context())
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if v, _ := sess.StringValue("user"); v != "alice" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	req := httptest.NewRequest("GET", "https://example.com/", nil)
	req.Header.Set("Cookie", latchhttp.DefaultCookieName+"="+iss.SessionToken.Reveal())
	return h, req
}

// BenchmarkMiddleware validates a cookie session and reads one value
// through the middleware, as BenchmarkLatch in the bench module does next to
// scs and gorilla/sessions.
func BenchmarkMiddleware(b *testing.B) {
	h, req := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkBareHandler is the floor: the same recorder and handler without
// any session.
func BenchmarkBareHandler(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	req := httptest.NewRequest("GET", "https://example.com/", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}

// TestMiddlewareAllocs holds the hot path to its allocation budget: no more
// than 10 allocations per request including the recorder's.
func TestMiddlewareAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	h, req := benchSetup(t)
	n := testing.AllocsPerRun(100, func() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	})
	if n > 10 {
		t.Fatalf("%v allocations per request, want at most 10", n)
	}
	t.Logf("%v allocs/op", n)
}
