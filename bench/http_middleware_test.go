package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gorilla/sessions"
	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	latchmem "github.com/latch-sessions/latch/store/memstore"
)

// BenchmarkHTTPMiddleware compares the job of issue #4: a request carrying a
// session cookie goes through each library's session middleware to a
// handler that reads one value of the session. Every iteration uses a new
// httptest.ResponseRecorder.
//
//	bare:    the handler alone (the floor)
//	latch:   latchhttp.Sessions.Middleware + FromContext + StringValue (memstore)
//	scs:     scs.SessionManager.LoadAndSave + GetString (scs memstore)
//	gorilla: sessions.CookieStore.Get + Values (the session lives in the cookie)
func BenchmarkHTTPMiddleware(b *testing.B) {
	b.Run("peer=bare", func(b *testing.B) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Cookie") == "" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		})
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: "session", Value: "x"})
		runHTTP(b, h, r, false)
	})

	b.Run("peer=latch", func(b *testing.B) {
		h, r := latchHTTP(b)
		runHTTP(b, h, r, false)
	})

	b.Run("peer=scs", func(b *testing.B) {
		sm := scs.New()
		sm.Store = memstore.New()
		token := scsToken(b, sm)
		h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if sm.GetString(r.Context(), "user") != "alice" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		}))
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
		runHTTP(b, h, r, false)
	})

	b.Run("peer=gorilla", func(b *testing.B) {
		hashKey, blockKey := make([]byte, 32), make([]byte, 32)
		rand.Read(hashKey)
		rand.Read(blockKey)
		cs := sessions.NewCookieStore(hashKey, blockKey)
		cs.Options.Secure, cs.Options.HttpOnly, cs.Options.SameSite = true, true, http.SameSiteLaxMode
		// Create the cookie.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		sess, _ := cs.New(req, "session")
		sess.Values["user"] = "alice"
		if err := sess.Save(req, rec); err != nil {
			b.Fatal(err)
		}
		cookie := rec.Result().Cookies()[0]
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := cs.Get(r, "session")
			if err != nil || s.Values["user"] != "alice" {
				w.WriteHeader(http.StatusUnauthorized)
			}
		})
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(cookie)
		// gorilla caches decoded sessions in the request (it replaces *r's
		// context), so each iteration needs a fresh request, as on a server.
		runHTTP(b, h, r, true)
	})
}

func runHTTP(b *testing.B, h http.Handler, r *http.Request, fresh bool) {
	b.ReportAllocs()
	for b.Loop() {
		req := r
		if fresh {
			c := *r
			req = &c
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// latchHTTP returns latch's middleware around a handler reading one value,
// and a request carrying a valid session cookie.
func latchHTTP(tb testing.TB) (http.Handler, *http.Request) {
	m, err := latch.New(latch.Config{Store: latchmem.New(), Observer: latch.DiscardObserver})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	is, err := m.Create(context.Background(), latch.NewSession{Subject: "alice", Data: json.RawMessage(`{"user":"alice"}`)})
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
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: latchhttp.DefaultCookieName, Value: is.SessionToken.Reveal()})
	return h, r
}
