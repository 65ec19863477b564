//go:build !latchfaults

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestNoClockHookInProductionBuild: only the latchfaults build steps the
// clock; a normal build ignores the file even when it is named.
func TestNoClockHookInProductionBuild(t *testing.T) {
	f := filepath.Join(t.TempDir(), "offset")
	if err := os.WriteFile(f, []byte("1h"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LATCH_FAULTS_CLOCK_FILE", f)
	if now := faultClock(context.Background(), &ui{stdout: io.Discard, stderr: io.Discard}); now != nil {
		t.Fatalf("a build without the latchfaults tag has a clock hook (it returned %v)", now())
	}
}
