package pgstore

import (
	"testing"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// TestConformance runs the store conformance suite against PostgreSQL, each
// subtest on a fresh schema.
func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTestStore(t, Options{})
	})
}
