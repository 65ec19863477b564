package mysqlstore

import (
	"testing"
)

// TestConnectionsReadCommitted: every pooled connection runs READ
// COMMITTED, the level the locking design (slot rows, no gap locks)
// assumes.
func TestConnectionsReadCommitted(t *testing.T) {
	s := openTestStore(t, Options{})
	rows, err := s.DB().QueryContext(t.Context(), "SHOW SESSION VARIABLES WHERE Variable_name IN ('tx_isolation', 'transaction_isolation')")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		if value != "READ-COMMITTED" {
			t.Errorf("%s = %s, want READ-COMMITTED", name, value)
		}
		n++
	}
	if err := rows.Err(); err != nil || n == 0 {
		t.Fatalf("no isolation variable found (%v)", err)
	}
}
