package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/latch-sessions/latch"
	latchmem "github.com/latch-sessions/latch/store/memstore"
)

// BenchmarkCoreLoad compares the job of issue #2 without an HTTP layer:
// take the session cookie of a request, load the session, read one value.
//
//	latch: parse the cookie + Manager.Validate + Session.Value
//	scs:   scs.SessionManager.Load(cookie) + GetString (memstore)
func BenchmarkCoreLoad(b *testing.B) {
	ctx := context.Background()

	b.Run("peer=latch", func(b *testing.B) {
		m, err := latch.New(latch.Config{Store: latchmem.New(), Observer: latch.DiscardObserver})
		if err != nil {
			b.Fatal(err)
		}
		is, err := m.Create(ctx, latch.NewSession{Subject: "alice", Data: []byte(`{"user":"alice"}`)})
		if err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: "__Host-latch", Value: is.SessionToken.Reveal()})
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			c, err := r.Cookie("__Host-latch")
			if err != nil {
				b.Fatal(err)
			}
			s, err := m.Validate(ctx, c.Value)
			if err != nil {
				b.Fatal(err)
			}
			if v, ok := s.Value("user"); !ok || len(v) == 0 {
				b.Fatal("no value")
			}
		}
	})

	b.Run("peer=scs", func(b *testing.B) {
		sm := scs.New()
		sm.Store = memstore.New()
		token := scsToken(b, sm)
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: token})
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			c, err := r.Cookie(sm.Cookie.Name)
			if err != nil {
				b.Fatal(err)
			}
			sctx, err := sm.Load(ctx, c.Value)
			if err != nil {
				b.Fatal(err)
			}
			if sm.GetString(sctx, "user") != "alice" {
				b.Fatal("no value")
			}
		}
	})
}

// scsToken creates an scs session holding user=alice and returns its token.
func scsToken(tb testing.TB, sm *scs.SessionManager) string {
	ctx, err := sm.Load(context.Background(), "")
	if err != nil {
		tb.Fatal(err)
	}
	sm.Put(ctx, "user", "alice")
	token, _, err := sm.Commit(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return token
}
