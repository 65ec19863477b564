// Package sqlbench holds benchmarks that compare latch's SQL stores with
// each other and with bare driver calls in one run (go test -bench): the
// validation read against a bare QueryRow of the same row, and Create
// throughput with 32 concurrent writers. It has no code of its own.
package sqlbench
