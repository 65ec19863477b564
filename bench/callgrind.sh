#!/bin/sh
# Instructions per operation of a Go benchmark, counted by valgrind's
# callgrind: the same on a loaded machine as on a quiet one (this machine's
# virtual CPUs expose no hardware counters to perf). The benchmark runs
# twice, N and 3N iterations, so setup cancels out:
# (I(3N) - I(N)) / 2N.
#
#   bench/callgrind.sh PACKAGE BENCHMARK-REGEXP [N (default 2000)]
#   bench/callgrind.sh ./internal/server 'BenchmarkVerifyHandler/token=session$'
#
# Run from the repository root; writes tmp-bench/callgrind/. The profile
# of the longer run (callgrind_annotate tmp-bench/callgrind/3n.out) shows
# where the instructions go.
set -eu
pkg=$1
bench=$2
n=${3:-2000}
dir=tmp-bench/callgrind
mkdir -p "$dir"
go test -c -o "$dir/pkg.test" "$pkg"
count() {
	# Asynchronous preemption signals are off: valgrind runs the program
	# slowly enough that they would fire inside the measured loop.
	(cd "$pkg" && GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$OLDPWD/$dir/$2.out" \
		"$OLDPWD/$dir/pkg.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$1x" -test.cpu 1 >/dev/null 2>"$OLDPWD/$dir/$2.log")
	awk '/^summary:/ {print $2}' "$dir/$2.out"
}
i1=$(count "$n" 1n)
i3=$(count "$((3 * n))" 3n)
awk -v a="$i1" -v b="$i3" -v n="$n" -v name="$bench" 'BEGIN { printf "%s: %.0f instructions/op\n", name, (b - a) / (2 * n) }'
