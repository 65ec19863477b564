//go:build !latchfaults

package main

import (
	"context"
	"time"
)

// faultClock is the clock hook of the fault-injection build (see
// clock_latchfaults.go). A normal build has none: latch serve runs on the
// system clock and nothing can move it.
func faultClock(context.Context, *ui) func() time.Time { return nil }
