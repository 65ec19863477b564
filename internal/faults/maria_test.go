package faults

import (
	"testing"
	"time"
)

// TestMariaDBRestart runs two replicas on a private MariaDB of the test's
// own and, under load, shuts it down (SIGTERM: a clean shutdown) and kills
// it (SIGKILL: InnoDB recovers at the next start), each time keeping it
// down for a phase before starting it again on the same port and data.
func TestMariaDBRestart(t *testing.T) {
	skipShort(t)
	db := startMariaDB(t)
	d := deploy(t, 2, mariaURL(db.Addr()))
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			for _, f := range []struct {
				name string
				stop func()
			}{{"mariadb SIGTERM + restart", db.Shutdown}, {"mariadb kill -9 + restart", db.Kill}} {
				start := time.Now()
				f.stop()
				time.Sleep(phase())
				db.Start()
				h.Inject(f.name, start, time.Now())
				time.Sleep(phase())
			}
		}
	})
}

// TestMariaDBNetworkCut is TestPostgresNetworkCut on a private MariaDB:
// each replica reaches it through a proxy of its own, and under load every
// proxy stops forwarding (connections open, nothing through) for longer
// than the store's call timeout, then forwards again.
func TestMariaDBNetworkCut(t *testing.T) {
	skipShort(t)
	db := startMariaDB(t)
	d, ps := deployVia(t, 2, db.Addr(), mariaURL)
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			start := time.Now()
			ps.Stall()
			time.Sleep(max(phase(), pgCut))
			ps.Resume()
			h.Inject("mariadb network cut", start, time.Now())
			time.Sleep(phase())
		}
	})
}
