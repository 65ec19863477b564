//go:build race

package dpop

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
