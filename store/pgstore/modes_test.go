package pgstore

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// TestQueryExecModes: the store works, and records read back exactly, in
// every pgx query mode a DSN can select (default_query_exec_mode): "exec"
// and "simple_protocol" are what a transaction-pooling PgBouncer needs, and
// simple_protocol returns text rows, which take the Scan fallback.
func TestQueryExecModes(t *testing.T) {
	base := testDSN(t)
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			sep := "?"
			if strings.Contains(base, "?") {
				sep = "&"
			}
			dsn := base + sep + "default_query_exec_mode=" + mode
			if !strings.Contains(base, "://") {
				dsn = base + " default_query_exec_mode=" + mode
			}
			s, err := Open(ctxT(t), dsn, Options{Schema: testSchema(t, base), OpTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := ctxT(t)
			r := newRecord(t, "al\x00ice\xff", 0)
			r.Data = nil
			old := newRecord(t, r.Subject, -time.Second)
			if _, err := s.Create(ctx, old, 0); err != nil {
				t.Fatal(err)
			}
			ev, err := s.Create(ctx, r, 1)
			if err != nil || len(ev) != 1 || ev[0] != old.ID {
				t.Fatalf("Create: evicted %v, %v", ev, err)
			}
			if got := mustGet(t, s, r.ID); !reflect.DeepEqual(got, want(r, 1)) {
				t.Fatalf("Get:\n got %+v\nwant %+v", got, want(r, 1))
			}
			next := store.Refresh{Key: r.Refresh.Key, Previous: r.Refresh.Current, Generation: 1, RotatedAt: testEpoch}
			next.Current[1] = 9
			got, err := s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: testEpoch, IdleExpiresAt: r.IdleExpiresAt})
			if err != nil || got.Refresh != next || got.Version != 2 {
				t.Fatalf("RotateRefresh: %+v, %v", got, err)
			}
			u := got.Clone()
			u.Data = []byte(`{}`)
			if err := s.Update(ctx, u); err != nil {
				t.Fatal(err)
			}
			l, err := s.List(ctx, r.Subject, testEpoch)
			if err != nil || len(l) != 1 || !reflect.DeepEqual(l[0], want(u, 3)) {
				t.Fatalf("List: %v, %v", ids(l), err)
			}
			if ids, err := s.RevokeSubject(ctx, r.Subject, store.ID{}, store.ReasonRevokeAll, testEpoch); err != nil || len(ids) != 1 {
				t.Fatalf("RevokeSubject: %v, %v", ids, err)
			}
			if n, err := s.Sweep(ctx, testEpoch.Add(48*time.Hour)); err != nil || n != 2 {
				t.Fatalf("Sweep: %d, %v", n, err)
			}
			// Create-with-eviction stays atomic in this mode.
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.Create(ctx, newRecord(t, "bob", time.Duration(i)), 2); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if l, err := s.List(ctx, "bob", testEpoch); err != nil || len(l) != 2 {
				t.Fatalf("%d live after 8 concurrent creates with max 2 (%v)", len(l), err)
			}
		})
	}
}
