//go:build latchfaults

package main

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// This file is compiled only with -tags latchfaults, which internal/faults
// builds its own latch binary with: it lets a test step one replica's
// clock. A production build (no tag) has no way to move latch's clock.
//
// LATCH_FAULTS_CLOCK_FILE names a file holding a Go duration ("2m", "-5s",
// "0s"): every time latch reads (session deadlines, token times, events)
// is the system clock plus that offset. The file is read every
// clockPoll, so a test that rewrites it sees the step take effect
// within that; a missing or unreadable file, or one that does not parse,
// leaves the offset as it was.
const clockPoll = 5 * time.Millisecond

func faultClock(ctx context.Context, u *ui) func() time.Time {
	path := os.Getenv("LATCH_FAULTS_CLOCK_FILE")
	if path == "" {
		return nil
	}
	u.warningf("fault-injection build: the clock follows the offset in %s (never run this build in production)", path)
	var offset atomic.Int64
	read := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
			offset.Store(int64(d))
		}
	}
	read()
	go func() {
		t := time.NewTicker(clockPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
}
