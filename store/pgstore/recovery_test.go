package pgstore

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqltest"
)

// TestOutageFailsClosedThenRecovers: while the database is unreachable every
// read fails with ErrUnavailable (never a record); once it is back the same
// Store works again without being reopened.
func TestOutageFailsClosedThenRecovers(t *testing.T) {
	dsn := testDSN(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skip("LATCH_TEST_POSTGRES is not a URL with a host; the proxy test needs one")
	}
	p := sqltest.NewProxy(t, u.Host)
	pu := *u
	pu.Host = p.Addr()
	s := openTestStore(t, Options{}) // migrates a fresh schema
	ps, err := Open(ctxT(t), pu.String(), Options{Schema: s.q.schema, OpTimeout: 10 * time.Second, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()

	r := newRecord(t, "alice", 0)
	if _, err := ps.Create(ctxT(t), r, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Get(ctxT(t), r.ID); err != nil {
		t.Fatal(err)
	}

	p.Cut()
	for i := 0; i < 3; i++ {
		got, err := ps.Get(ctxT(t), r.ID)
		if !errors.Is(err, store.ErrUnavailable) || got != nil {
			t.Fatalf("Get during an outage: %v, %v; want ErrUnavailable and no record", got, err)
		}
	}
	if err := ps.Ping(ctxT(t)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping during an outage: %v", err)
	}

	p.Restore()
	// The pool reconnects on demand; allow a few attempts for connections
	// that died with the outage to be discarded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		got, err := ps.Get(ctx, r.ID)
		if err == nil {
			if got.ID != r.ID {
				t.Fatal("Get after recovery returned another record")
			}
			return
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get after recovery: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("store did not recover after the database came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
