package boltstore

import (
	"testing"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// TestConformance runs the shared store conformance suite against a fresh
// file per subtest, with the default durability (fsync per commit), and
// checks the file's consistency after each subtest.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTestStore(t, nil)
	})
}
