//go:build !linux

package bench

import "time"

var start0 = time.Now()

// threadCPU falls back to wall time where the thread CPU clock is not
// wired up.
func threadCPU() time.Duration { return time.Since(start0) }
