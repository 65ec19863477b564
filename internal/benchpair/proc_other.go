//go:build !linux

package benchpair

import "time"

var start = time.Now()

// processCPU falls back to wall time where getrusage is not wired up.
func processCPU() time.Duration { return time.Since(start) }

func syscalls() int64 { return 0 }
