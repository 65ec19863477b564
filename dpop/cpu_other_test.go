//go:build !unix

package dpop_test

import "time"

func processCPU() time.Duration { return 0 }
