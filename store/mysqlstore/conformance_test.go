package mysqlstore

import (
	"testing"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// TestConformance runs the store conformance suite against MySQL/MariaDB,
// each subtest on a fresh database, and reports the transient conflicts
// (deadlocks, lock wait timeouts) the store retried.
func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTestStore(t, Options{})
		t.Cleanup(func() {
			if n := s.Stats().Retries; n > 0 {
				t.Logf("%d transient conflicts retried", n)
			}
		})
		return s
	})
}
